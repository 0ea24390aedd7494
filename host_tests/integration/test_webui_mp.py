"""The web pages (docs/webui.md) in a real browser: headless Chromium driven by selenium against the firmware on
the MicroPython binary, the pages built by tools/www.py and served by the box. What an installer does:
log in (wrong, then right), watch a charging car appear on the dashboard with its current, change the house
connection (and see a refusal next to the field), add a wallbox, add, delete and import RFIDs, export the
session CSV, read the System page, change the factory password (the warning goes), restart the box.

Screenshots of every page land in a temporary directory (printed; kept with LOADPILOT_SHOTS=DIR)."""
import os
import time

import pytest

from firmware_proc import Firmware, free_port, wait_for
from webui_driver import FACTORY, PAGE_TEST, by_id, click, field_error, go, set_value, shot, text_of, until, www

pytestmark = PAGE_TEST

NEW_PW = "webui-Pass1"
DEVICES = [{"dev_id": "E2", "driver": "http_input", "address": "", "name": "Garage"},
           {"dev_id": "M1", "driver": "http_input", "address": "", "name": "Grid", "role": 3}]


@pytest.fixture(scope="module")
def box():
    port = free_port()
    fw = Firmware(config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "http_port": port, "devices": DEVICES,
                          "lb_enabled": True, "max_total_current": 32000})
    www.build(os.path.join(fw.fs_dir, "www"))
    fw.start()
    try:
        fw.wait_port(port)
        yield fw, "http://127.0.0.1:%d/" % port
    finally:
        fw.stop()


def test_login_wrong_then_right_and_the_factory_password_warning(box, browser):
    fw, url = box
    d = browser
    d.get(url)
    until(d, lambda: by_id(d, "login").is_displayed())
    form = by_id(d, "login")
    set_value(form.find_element("name", "pwd"), "wrong-password")
    click(d, by_id(d, "login-btn"))
    assert "Wrong user or password" in text_of(d, "login-err")  # the box's 401 (after its growing delay)
    set_value(form.find_element("name", "pwd"), FACTORY)
    click(d, by_id(d, "login-btn"))
    until(d, lambda: by_id(d, "budget").text)
    assert by_id(d, "pwwarn").is_displayed() and "factory default" in by_id(d, "pwwarn").text
    assert "Budget per phase\n32.0 A" in by_id(d, "budget").text
    shot(d, "1-login-dashboard")


def test_a_charging_car_appears_on_the_dashboard_with_its_current(box, browser):
    fw, url = box
    d = browser
    fw.ctl("site", readings={"M1": {"current_ma": [9000, 8000, 7000], "power_w": 5520}})
    fw.ctl("set_adc", name="cp", mv=9000)  # a car plugged in at the box itself ...
    time.sleep(0.3)
    fw.ctl("set_adc", name="cp", mv=6000)  # ... asks for power
    card = until(d, lambda: "charging" in by_id(d, "dev-E1").text and by_id(d, "dev-E1").text)
    shown = [float(x) for x in card.split("Current L1/L2/L3\n")[1].split(" A")[0].split(" / ")]
    assert len(shown) == 3 and min(shown) >= 6.0, card  # a 3-phase car draws at least the minimum on each phase
    alloc = float(card.split("Allocation\n")[1].split(" A")[0])
    assert alloc >= 6.0 and "\nReason\n" in card, card
    until(d, lambda: "Grid now\n9.0 / 8.0 / 7.0 A" in by_id(d, "budget").text)
    time.sleep(4.5)  # a few polls for the plot
    shot(d, "2-dashboard-charging")


def test_change_the_house_connection_and_a_refusal_next_to_the_field(box, browser):
    fw, url = box
    d = browser
    go(d, url, "load")
    until(d, lambda: by_id(d, "f-max_total_current"))
    set_value(by_id(d, "f-reserve_current"), "-1")
    click(d, by_id(d, "save"))
    until(d, lambda: "out of range" in field_error(d, "reserve_current"))
    assert fw.ctl("config_get", key="reserve_current") == 0  # refused: nothing changed
    shot(d, "3-load-refused")
    set_value(by_id(d, "f-reserve_current"), "2")
    set_value(by_id(d, "f-max_total_current"), "40")
    click(d, by_id(d, "save"))
    until(d, lambda: fw.ctl("config_get", key="max_total_current") == 40000)
    assert fw.ctl("config_get", key="reserve_current") == 2000
    assert "Saved" in text_of(d, "save-res")
    # the schedule (seed: at least two entries): one entry is refused next to the schedule, two are taken
    click(d, until(d, lambda: by_id(d, "sched-add")))
    click(d, by_id(d, "save"))
    until(d, lambda: "at least 2 entries" in field_error(d, "cm_schedule"))
    click(d, by_id(d, "sched-add"))
    set_value(d.find_elements("css selector", "#sched input")[0], "10")
    click(d, by_id(d, "save"))
    until(d, lambda: len(fw.ctl("config_get", key="cm_schedule")) == 2)
    assert [(e["hour"], e["l1"]) for e in fw.ctl("config_get", key="cm_schedule")] == [(0, 10000), (1, 16000)]
    until(d, lambda: "Saved" in by_id(d, "save-res").text)  # the page is drawn anew from the box
    click(d, by_id(d, "groups-add"))  # a charging group's limits
    click(d, by_id(d, "save"))
    until(d, lambda: fw.ctl("config_get", key="group_limits") == [{"group": 1, "l1": 16000, "l2": 16000, "l3": 16000}])


def test_add_a_wallbox(box, browser):
    fw, url = box
    d = browser
    from selenium.webdriver.support.ui import Select
    go(d, url, "load")
    click(d, until(d, lambda: by_id(d, "add-wallbox")))
    until(d, lambda: by_id(d, "dev-editor"))
    set_value(by_id(d, "d-name"), "Carport 2")
    Select(by_id(d, "d-driver")).select_by_value("evse_powerbrain")
    set_value(by_id(d, "d-address"), "nohost")
    set_value(by_id(d, "d-max_charging_cur"), "20")
    click(d, by_id(d, "dev-done"))
    click(d, by_id(d, "save"))
    # the box refuses the address; the device's editor opens with the message next to its address field
    err = until(d, lambda: field_error(d, "devices[2].address"))
    assert err.startswith("devices[2].address: address 'nohost': expected IP:port"), err
    assert [x["dev_id"] for x in fw.ctl("config_get", key="devices")] == ["E2", "M1"]
    shot(d, "4-device-refused")
    set_value(by_id(d, "d-address"), "127.0.0.1:1")
    click(d, by_id(d, "dev-done"))
    click(d, by_id(d, "save"))
    devs = until(d, lambda: len(fw.ctl("config_get", key="devices")) == 3 and fw.ctl("config_get", key="devices"))
    e3 = devs[2]
    assert (e3["dev_id"], e3["name"], e3["driver"], e3["address"], e3["max_charging_cur"]) == \
        ("E3", "Carport 2", "evse_powerbrain", "127.0.0.1:1", 20000)
    until(d, lambda: "Carport 2" in by_id(d, "dev-list").text)
    shot(d, "5-load-management")


def test_add_delete_and_import_rfids(box, browser, tmp_path):
    fw, url = box
    d = browser
    go(d, url, "whitelists")
    until(d, lambda: by_id(d, "wl-id"))
    set_value(by_id(d, "wl-id"), "zz")
    click(d, by_id(d, "wl-add"))
    assert "4, 7 or 10 byte hex number" in text_of(d, "wl-err")  # the command layer's validation text
    set_value(by_id(d, "wl-id"), "07a47731")
    click(d, by_id(d, "wl-add"))
    until(d, lambda: "07A47731" in by_id(d, "wl-list").text)
    csv = tmp_path / "cards.csv"
    csv.write_text("04A1B2C3\n04D5E6F7\n0A0B0C0D0E0F11\n")
    inp = by_id(d, "wl-file")
    d.execute_script("arguments[0].hidden = false", inp)
    inp.send_keys(str(csv))
    until(d, lambda: "4 entries" in by_id(d, "wl-info").text)
    assert "04D5E6F7" in by_id(d, "wl-list").text
    shot(d, "6-whitelists")
    click(d, d.find_element("css selector", '#wl-list button[data-id="07A47731"]'))
    until(d, lambda: "07A47731" not in by_id(d, "wl-list").text and "3 entries" in by_id(d, "wl-info").text)
    set_value(by_id(d, "wl-q"), "04D")
    until(d, lambda: by_id(d, "wl-list").text.strip() == "04D5E6F7 RFID Delete")
    click(d, by_id(d, "wl-export"))
    path = os.path.join(d.downloads, "whitelist.csv")
    until(d, lambda: os.path.exists(path) and os.path.getsize(path) > 0)
    assert open(path).read().splitlines() == ["id,type", "04A1B2C3,RFID", "04D5E6F7,RFID", "0A0B0C0D0E0F11,RFID"]
    click(d, by_id(d, "wl-clear"))
    d.switch_to.alert.accept()
    until(d, lambda: "0 entries" in by_id(d, "wl-info").text)


def test_export_the_session_csv(box, browser):
    fw, url = box
    d = browser
    fw.ctl("set_adc", name="cp", mv=12000)  # the car of the dashboard test leaves: its session closes
    go(d, url, "dashboard")
    until(d, lambda: "Total charging sessions\n1 sessions" in by_id(d, "sessions").text, timeout=20)
    click(d, by_id(d, "export-sessions"))
    path = os.path.join(d.downloads, "sessions.csv")
    until(d, lambda: os.path.exists(path) and os.path.getsize(path) > 0)
    text = open(path).read()
    rows = text.splitlines()  # the seed's columns, one row: the car of the dashboard test
    assert rows[0] == "start_date,start_time,duration,energy_wh,rfid" and len(rows) == 2, text
    assert rows[1].count(",") == 4 and rows[1].split(",")[2].startswith("0:00:"), text
    shot(d, "7-dashboard-sessions")


def test_system_page_log_export_and_password_change(box, browser):
    fw, url = box
    d = browser
    from selenium.webdriver.support.ui import Select
    go(d, url, "system")
    st = until(d, lambda: "Firmware" in by_id(d, "sys-status").text and by_id(d, "sys-status").text)
    assert "Loop lag" in st and "lowest free" in st and "manager" in by_id(d, "tasks").text
    until(d, lambda: "LoadPilot" in by_id(d, "log").text and "ready" in by_id(d, "log").text)
    Select(by_id(d, "log-level")).select_by_value("ERROR")
    until(d, lambda: "ready" not in by_id(d, "log").text)
    click(d, by_id(d, "cfg-export"))
    path = os.path.join(d.downloads, "loadpilot-config.json")
    until(d, lambda: os.path.exists(path) and os.path.getsize(path) > 0)
    assert "admin_pwd" in open(path).read() and '"max_total_current": 40000' in open(path).read()
    shot(d, "8-system")
    set_value(by_id(d, "pw-old"), FACTORY)
    set_value(by_id(d, "pw-new"), NEW_PW)
    set_value(by_id(d, "pw-rep"), NEW_PW)
    click(d, by_id(d, "pw-save"))
    assert "Password changed" in text_of(d, "pw-err")
    until(d, lambda: not by_id(d, "pwwarn").is_displayed())
    go(d, url, "dashboard")  # the pages go on with the new password
    until(d, lambda: by_id(d, "budget").text)
    assert not by_id(d, "pwwarn").is_displayed()


def test_authorization_and_backend_pages(box, browser):
    fw, url = box
    d = browser
    from selenium.webdriver.support.ui import Select
    go(d, url, "authorization")
    Select(until(d, lambda: by_id(d, "f-free_charging"))).select_by_value("1")
    set_value(by_id(d, "f-vehicle_connection_timeout_s"), "90")
    click(d, by_id(d, "save"))
    until(d, lambda: fw.ctl("config_get", key="vehicle_connection_timeout_s") == 90)
    assert fw.ctl("config_get", key="free_charging") is True
    shot(d, "9-authorization")
    go(d, url, "backend")
    until(d, lambda: by_id(d, "f-mqtt_topic_root"))
    assert "OCPP client: off" in text_of(d, "ocpp-state")
    # OCPP settings: the password is write-only, a blank field keeps it, and a bad URL is refused at the field
    set_value(by_id(d, "f-ocpp_url"), "http://backend.example/ocpp")
    click(d, by_id(d, "save"))
    until(d, lambda: "ocpp_url" in field_error(d, "ocpp_url"))
    assert fw.ctl("config_get", key="ocpp_url") == ""
    set_value(by_id(d, "f-ocpp_url"), "ws://127.0.0.1:1/ocpp")
    set_value(by_id(d, "f-ocpp_password"), "Ocpp-Secret-42")
    click(d, by_id(d, "save"))
    until(d, lambda: fw.ctl("config_get", key="ocpp_url") == "ws://127.0.0.1:1/ocpp")
    until(d, lambda: "Saved" in by_id(d, "save-res").text)  # the page is drawn anew from the box
    pw = until(d, lambda: by_id(d, "f-ocpp_password"))
    assert pw.get_attribute("value") == "" and "stored" in pw.get_attribute("placeholder")
    assert "Ocpp-Secret-42" not in d.page_source

    def heartbeat_120():  # the page may be drawn anew meanwhile (a stale field): then again
        set_value(by_id(d, "f-ocpp_heartbeat_s"), "120")
        click(d, by_id(d, "save"))  # the blank password field keeps the stored one
        return wait_for(lambda: fw.ctl("config_get", key="ocpp_heartbeat_s") == 120, 2)
    until(d, heartbeat_120)
    until(d, lambda: "Saved" in by_id(d, "save-res").text)
    assert fw.ctl("config_get", key="ocpp_password") != ""
    fw.ctl("config_set", values={"ocpp_url": ""})
    shot(d, "10-backend-ocpp")
    set_value(by_id(d, "f-mqtt_url"), "not a url")
    click(d, by_id(d, "save"))
    until(d, lambda: "bad broker URL" in field_error(d, "mqtt_url"))
    shot(d, "10-backend")


def test_phone_width_and_restart(box, browser):
    fw, url = box
    d = browser
    d.set_window_size(400, 850)
    go(d, url, "dashboard")
    until(d, lambda: by_id(d, "dev-E1").text)
    assert not by_id(d, "nav").is_displayed() and by_id(d, "menu-btn").is_displayed()
    shot(d, "11-phone")
    d.set_window_size(1280, 1000)
    go(d, url, "system")
    click(d, until(d, lambda: by_id(d, "restart")))
    d.switch_to.alert.accept()
    assert wait_for(lambda: fw.proc.poll() is not None, 5) and fw.proc.returncode == 0  # the box really restarts
    assert "restart requested" in fw.read_output()
