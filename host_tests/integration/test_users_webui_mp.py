"""The Users page (docs/users.md, docs/webui.md) in headless Chromium against the firmware on the MicroPython
binary: the admin adds a user with a new ID, a wallbox and an RFID, sees it listed, and the box has it."""
import base64
import json
import os
import urllib.request

import pytest

from firmware_proc import Firmware, free_port
from webui_driver import FACTORY, PAGE_TEST, by_id, click, go, set_value, shot, text_of, until, www

pytestmark = PAGE_TEST  # skipped (or failed on CI) where Chromium is missing, as the other page tests

DEVICES = [{"dev_id": "E2", "driver": "http_input", "address": "", "name": "Garage"}]


@pytest.fixture(scope="module")
def box():
    port = free_port()
    fw = Firmware(config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "http_port": port, "devices": DEVICES})
    www.build(os.path.join(fw.fs_dir, "www"))
    fw.start()
    try:
        fw.wait_port(port)
        yield fw, "http://127.0.0.1:%d/" % port
    finally:
        fw.stop()


def test_add_a_user_on_the_users_page_and_see_it_listed(box, browser):
    fw, url = box
    d = browser
    d.get(url)
    until(d, lambda: by_id(d, "login").is_displayed(), timeout=20)
    set_value(by_id(d, "login").find_element("name", "pwd"), FACTORY)
    click(d, by_id(d, "login-btn"))
    until(d, lambda: not by_id(d, "login").is_displayed(), timeout=20)
    go(d, url, "users")
    until(d, lambda: "No users" in by_id(d, "us-list").text, timeout=20)
    click(d, by_id(d, "us-add"))
    uid = until(d, lambda: by_id(d, "us-id").get_attribute("value"), timeout=20)
    assert uid.isdigit() and len(uid) == 14
    set_value(by_id(d, "us-name"), "Anna")
    click(d, by_id(d, "us-box-E2"))
    click(d, by_id(d, "us-add-rfid"))
    set_value(by_id(d, "us-rfids").find_element("css selector", "input"), "0a1b2c3d")
    click(d, by_id(d, "us-save"))
    until(d, lambda: "Anna" in by_id(d, "us-list").text, timeout=20)
    row = by_id(d, "us-list").text
    assert uid in row and "E2" in row and "maintain" in row
    shot(d, "users-page")
    # the box has it as the page showed it
    req = urllib.request.Request(url + "cnf?cmd=get_users", headers={
        "Authorization": "Basic " + base64.b64encode(("admin:" + FACTORY).encode()).decode()})
    users = json.loads(urllib.request.urlopen(req, timeout=10).read())
    assert [(u["id"], u["name"], u["dev_ids"], [r["id"] for r in u["rfids"]]) for u in users] == \
        [(uid, "Anna", ["E2"], ["0A1B2C3D"])]
    # a refusal shows on the page: an RFID that is no ID
    click(d, d.find_element("css selector", "#us-list button.sec"))
    click(d, by_id(d, "us-add-rfid"))
    set_value(by_id(d, "us-rfids").find_elements("css selector", "tr")[1].find_element("css selector", "input"), "zz")
    click(d, by_id(d, "us-save"))
    assert "rfids[1].id" in text_of(d, "us-err", timeout=20)
    shot(d, "users-edit")


def _box(url, query, body=None):
    """The box as a wallbox or the admin's script talks to it: with the admin login."""
    req = urllib.request.Request(url + "cnf?" + query, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": "Basic " +
                                          base64.b64encode(("admin:" + FACTORY).encode()).decode()})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


def test_a_user_logs_in_with_the_user_id_and_learns_an_rfid(box, browser):
    fw, url = box
    d = browser
    uid = _box(url, "cmd=get_users")[0]["id"]
    d.execute_script("sessionStorage.clear()")
    d.get(url)
    until(d, lambda: by_id(d, "login").is_displayed(), timeout=20)
    set_value(by_id(d, "login-uid"), "12345678")  # a wrong ID: refused on the form
    click(d, by_id(d, "login-user-btn"))
    assert "no user with this ID" in text_of(d, "login-err", timeout=20)
    set_value(by_id(d, "login-uid"), uid)
    click(d, by_id(d, "login-user-btn"))
    until(d, lambda: "Hello Anna" in by_id(d, "u-hello").text, timeout=20)
    assert uid not in d.current_url and not by_id(d, "nav").is_displayed()  # no admin menu, no ID in the address
    until(d, lambda: "(mine)" in by_id(d, "u-dev-E2").text, timeout=20)
    # Learn, then the car is plugged in at E2 and an unknown card placed: it is Anna's and charges
    click(d, until(d, lambda: by_id(d, "us-learn"), timeout=20))
    assert "Learning" in text_of(d, "us-learn-state", timeout=20)
    _box(url, "cmd=set_ajax_evse&dev_id=E2", {"state": 2, "rfid": "04A1B2C3D4E5F6"})
    until(d, lambda: "Learned: RFID 04A1B2C3D4E5F6" in by_id(d, "us-learn-state").text, timeout=20)
    until(d, lambda: len(by_id(d, "us-rfids").find_elements("css selector", "tr")) == 2, timeout=20)
    assert any(r["id"] == "04A1B2C3D4E5F6" and r["ac_auth"] for r in _box(url, "cmd=get_users")[0]["rfids"])
    # she renames herself and hides her name: the box has it
    set_value(by_id(d, "u-name"), "Anna K")
    click(d, by_id(d, "u-display"))
    click(d, by_id(d, "u-save"))
    until(d, lambda: _box(url, "cmd=get_users")[0]["name"] == "Anna K", timeout=20)
    u = _box(url, "cmd=get_users")[0]
    assert u["display"] is False and u["dev_ids"] == ["E2"]
    until(d, lambda: "Hello Anna K" in by_id(d, "u-hello").text, timeout=20)
    shot(d, "user-home")
    # a reload keeps her logged in (sessionStorage); Log out ends it
    d.get(url)
    until(d, lambda: "Hello Anna K" in by_id(d, "u-hello").text, timeout=20)
    click(d, by_id(d, "u-logout"))
    until(d, lambda: by_id(d, "login").is_displayed(), timeout=20)
    assert d.execute_script("return sessionStorage.getItem('lp_uid')") is None
    _box(url, "cmd=set_ajax_evse&dev_id=E2", {"state": 1})
