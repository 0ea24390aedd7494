"""Authorization on the MicroPython binary with the peers a user has (mosquitto + paho): the board's own charge
point driven by the virtual EV (control socket set_adc cp) and two MQTT-pushed wallboxes, all requiring
authorization. An unauthorized car gets nothing (reason auth), an RFID from the whitelist starts it, an unknown
one is refused, enter_rfid without a device picks the car plugged in last, unplugging ends a waiting session,
free charging authorizes at once, override_device E/U need credentials, and the whitelist's CSV goes round
trip over MQTT api/ in parts and pages (docs/authorization.md)."""
import json
import time

import pytest

from firmware_proc import Firmware, free_port, wait_for
from mqtt_peers import Mosquitto, Observer
from test_mqtt_topics import R, api, last_json, pump, wait_subscribed

pytestmark = pytest.mark.mp

ADMIN = "Adm1n-S3cret"
DEVICES = [
    {"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "max_charging_cur": 16000, "auth_required": True},
    {"dev_id": "E2", "driver": "http_input", "address": "mqtt", "auth_required": True},
    {"dev_id": "E3", "driver": "http_input", "address": "mqtt", "auth_required": True},
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    broker = Mosquitto().start()
    fs = str(tmp_path_factory.mktemp("fs"))  # kept across a restart of the firmware (the last test)
    fw = Firmware(fs_dir=fs, config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0,
                          "mqtt_url": "mqtt://127.0.0.1:%d" % broker.port, "mqtt_api_url": "mqtt",
                          "mqtt_dev_info_url": "mqtt", "mqtt_publish_s": 1, "max_total_current": 32000,
                          "admin_pwd": ADMIN, "devices": DEVICES}).start()
    obs = Observer(broker.port)
    try:
        wait_subscribed(obs)
        yield fw, obs
    finally:
        obs.close()
        fw.stop()
        broker.close()


def status_of(fw, dev_id):
    return [d for d in fw.status()["devices"] if d["dev_id"] == dev_id][0]


def dev_info(obs, dev_id):
    info = api(obs, "cmd=get_dev_info")
    return [d for d in info["devices"] if d["dev_id"] == dev_id][0]


def push(obs, dev_id, **obj):
    """One set/<dev_id> message; -> its set_res answer."""
    pump(obs, 0)
    n = len(obs.messages)
    obs.publish("%s/set/%s" % (R, dev_id), json.dumps(obj), qos=1)
    return last_json(obs, "%s/set_res/%s" % (R, dev_id), after=n)


def plug_local(fw):
    fw.ctl("set_adc", name="cp", mv=9000)
    assert wait_for(lambda: fw.ctl("evse")["cp"] == "B")
    fw.ctl("set_adc", name="cp", mv=6000)  # the car asks to charge (C)


def test_a_car_without_authorization_gets_nothing_and_an_unknown_rfid_is_refused(env):
    fw, obs = env
    plug_local(fw)
    assert wait_for(lambda: status_of(fw, "E1")["reason"] == "auth", timeout=6)
    assert dev_info(obs, "E1")["auth"] == "waiting"
    time.sleep(2.5)  # a whole manager cycle later still nothing
    ev = fw.ctl("evse")
    assert ev["offered_ma"] == 0 and fw.ctl("board")["outputs"]["contactor"] == 0
    assert status_of(fw, "E1")["alloc_ma"] == 0 and status_of(fw, "E1")["start_ma"] == 0
    ans = api(obs, "cmd=enter_rfid&rfid=0a0b0c0d&dev_id=E1")  # well-formed, not on the whitelist
    assert "0A0B0C0D is not on the whitelist" in ans["error"]
    ans = api(obs, "cmd=enter_rfid&rfid=0a0b0c&dev_id=E1")  # 3 bytes: not an ID at all
    assert "4, 7 or 10 byte hex number with optional postfix _1 or _2" in ans["error"]
    assert "INPUT_AUTH" in ans["error"] and "MAC address" in ans["error"]
    time.sleep(2.5)
    assert fw.ctl("evse")["offered_ma"] == 0 and dev_info(obs, "E1")["auth"] == "waiting"


def test_an_rfid_from_the_whitelist_starts_charging(env):
    fw, obs = env
    assert api(obs, "cmd=whitelist_add&id=07:a4:77:31") == {"ok": True, "id": "07A47731", "added": True,
                                                             "entries": 1}
    ans = api(obs, "cmd=enter_rfid&rfid=07-A4-77-31&dev_id=E1")  # typed another way: the same card
    assert ans == {"ok": True, "dev_id": "E1", "result": "authorized"}
    assert wait_for(lambda: fw.ctl("board")["outputs"]["contactor"] == 1, timeout=6)
    assert fw.ctl("evse")["offered_ma"] >= 6000
    e1 = dev_info(obs, "E1")
    assert e1["auth"] == "authorized" and e1["rfid"] == "07A47731"
    assert status_of(fw, "E1")["reason"] != "auth"


def test_enter_rfid_without_a_device_goes_to_the_car_plugged_in_last(env):
    fw, obs = env
    assert push(obs, "E2", state=2)["charging_current"] == 0
    assert wait_for(lambda: status_of(fw, "E2")["reason"] == "auth", timeout=6)
    time.sleep(0.3)
    push(obs, "E3", state=2)
    assert wait_for(lambda: status_of(fw, "E3")["reason"] == "auth", timeout=6)
    assert push(obs, "E3", state=2)["charging_current"] == 0
    ans = api(obs, "cmd=enter_rfid&rfid=07A47731")
    assert ans == {"ok": True, "dev_id": "E3", "result": "authorized"}  # the car plugged in most recently
    assert wait_for(lambda: push(obs, "E3", state=2)["charging_current"] >= 6000, timeout=8)
    assert push(obs, "E2", state=2)["charging_current"] == 0
    ans = api(obs, "cmd=enter_rfid&rfid=07A47731")
    assert ans == {"ok": True, "dev_id": "E2", "result": "authorized"}  # now the only one waiting
    ans = api(obs, "cmd=enter_rfid&rfid=07A47731")
    assert "no car is waiting for authorization" in ans["error"]
    assert wait_for(lambda: push(obs, "E2", state=2)["charging_current"] >= 6000, timeout=8)


def test_unplugging_ends_the_authorization_and_a_waiting_session(env):
    fw, obs = env
    push(obs, "E2", state=1)  # E2's car leaves: its authorization ends with it
    assert wait_for(lambda: dev_info(obs, "E2")["auth"] == "none", timeout=6)
    push(obs, "E2", state=2)  # the next car waits again
    assert wait_for(lambda: status_of(fw, "E2")["reason"] == "auth", timeout=6)
    assert dev_info(obs, "E2")["auth"] == "waiting"
    push(obs, "E2", state=1)  # unplugged before anyone authorized it
    assert wait_for(lambda: dev_info(obs, "E2")["auth"] == "none", timeout=6)
    assert fw.wait_output("E2: car unplugged before authorization")
    push(obs, "E2", state=2)  # and the car after that is not authorized by either
    assert wait_for(lambda: status_of(fw, "E2")["reason"] == "auth", timeout=6)
    time.sleep(2.2)
    assert push(obs, "E2", state=2)["charging_current"] == 0


def test_a_wallbox_reader_authorizes_with_its_rfid_field(env):
    fw, obs = env
    push(obs, "E2", state=2, rfid="99887766")  # a card not on the list: logged, the car stays locked
    assert fw.wait_output("E2: ID 99887766 is not on the whitelist")
    assert api(obs, "cmd=whitelist_add&id=99887766")["added"] is True
    push(obs, "E2", state=2, rfid="99:88:77:66")
    assert wait_for(lambda: push(obs, "E2", state=2)["charging_current"] >= 6000, timeout=8)
    assert dev_info(obs, "E2")["rfid"] == "99887766"


def test_waiting_past_the_vehicle_connection_timeout(env):
    fw, obs = env
    assert api(obs, "cmd=set_params&vehicle_connection_timeout_s=2")["ok"]
    push(obs, "E3", state=1)
    assert wait_for(lambda: dev_info(obs, "E3")["auth"] == "none", timeout=6)
    push(obs, "E3", state=2)
    assert wait_for(lambda: dev_info(obs, "E3")["auth"] == "timeout", timeout=10)
    assert status_of(fw, "E3")["reason"] == "auth"
    ans = api(obs, "cmd=enter_rfid&rfid=07A47731")  # no longer a candidate for the automatic choice
    assert "no car is waiting" in ans["error"] and "E3" in ans["error"]
    assert api(obs, "cmd=enter_rfid&rfid=07A47731&dev_id=E3")["result"] == "authorized"
    assert wait_for(lambda: push(obs, "E3", state=2)["charging_current"] >= 6000, timeout=8)
    assert api(obs, "cmd=set_params&vehicle_connection_timeout_s=45")["ok"]


def test_override_flags_e_and_u_need_credentials_and_the_password_never_shows(env):
    fw, obs = env
    ans = api(obs, "cmd=override_device&dev_id=E1&flags=E")
    assert "need the admin password" in ans["error"]
    ans = api(obs, "cmd=override_device&dev_id=E1&flags=U")
    assert "RFID/PIN" in ans["error"]
    ans = api(obs, "cmd=override_device&dev_id=E1&flags=U&rfid=11223344")
    assert "not on the whitelist" in ans["error"]
    ans = api(obs, "cmd=override_device&dev_id=E1&flags=E&pwd=wrong-" + ADMIN)
    assert ans["error"] == "override_device: wrong admin password" and ADMIN not in json.dumps(ans)
    assert "pwd=***" in ans["query"]
    assert api(obs, "cmd=override_device&dev_id=E1&flags=U&rfid=07a47731") == {"ok": True}
    assert api(obs, "cmd=override_device&dev_id=E1&flags=E&pwd=" + ADMIN) == {"ok": True}
    o = dev_info(obs, "E1")["override"]
    assert o["no_evse_rules"] is True and o["no_user_rules"] is True and o["by"] == "admin"
    assert wait_for(lambda: dev_info(obs, "E1")["override"].get("plugged"), timeout=6)  # held for this car
    pump(obs, 0.3)
    assert not any(ADMIN.encode() in m[1] for m in obs.messages)
    assert ADMIN not in fw.read_output()


def test_free_charging_authorizes_at_once(env):
    fw, obs = env
    fw.ctl("set_adc", name="cp", mv=12000)  # E1's car leaves: its authorization and overrides end
    assert wait_for(lambda: (lambda e: e["auth"] == "none" and e["override"] is None)(dev_info(obs, "E1")),
                    timeout=6)
    plug_local(fw)
    assert wait_for(lambda: dev_info(obs, "E1")["auth"] == "waiting", timeout=6)
    assert fw.ctl("evse")["offered_ma"] == 0
    assert api(obs, "cmd=set_params&free_charging=true")["ok"]  # the waiting car starts
    assert wait_for(lambda: fw.ctl("board")["outputs"]["contactor"] == 1, timeout=6)
    fw.ctl("set_adc", name="cp", mv=12000)
    assert wait_for(lambda: dev_info(obs, "E1")["auth"] == "none", timeout=6)
    plug_local(fw)  # a new car charges at once, never waiting
    assert wait_for(lambda: fw.ctl("board")["outputs"]["contactor"] == 1, timeout=6)
    # the published dev_info follows on its next round (mqtt_publish_s), not at the contactor's instant
    assert wait_for(lambda: dev_info(obs, "E1")["auth"] == "authorized", timeout=6)
    assert api(obs, "cmd=set_params&free_charging=false")["ok"]


# ---- the whitelist's CSV over MQTT api/

def export_all(obs):
    parts = []
    offset = 0
    while offset is not None:
        ans = api(obs, "cmd=whitelist_export&offset=%d" % offset)
        parts.append(ans["csv"])
        offset = ans["next"]
    return "".join(parts).encode(), len(parts)


def import_parts(obs, data, size=3000):
    """The CSV in MQTT-sized parts, cut anywhere (mid-line too); -> the last answer."""
    chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    for i, c in enumerate(chunks):
        last = 1 if i == len(chunks) - 1 else 0
        ans = api(obs, "cmd=whitelist_import&part=%d&last=%d" % (i + 1, last), c)
        if "error" in ans or last:
            return ans
        assert ans == {"ok": True, "part": i + 1}


def test_whitelist_csv_round_trip_with_600_ids(env):
    fw, obs = env
    rows = ["Name;Card"] + ["user %d;%s" % (i, "%08x" % (0x10000000 + i * 7919)) for i in range(590)]
    rows += ["mac;aa:bb:cc:00:00:%02x" % i for i in range(8)] + ["key;input_auth", "seven;04a1b2c3d4e5f6_2"]
    ans = import_parts(obs, ("\r\n".join(rows) + "\r\n").encode())
    assert ans == {"ok": True, "added": 600, "entries": 602}
    first, pages = export_all(obs)
    assert pages >= 7 and first.startswith(b"id,type\n") and first.count(b"\n") == 603
    assert b"\n04A1B2C3D4E5F6_2,RFID\n" in first and b"\nAABBCC000007,MAC\n" in first and b"INPUT_AUTH,SPECIAL" in first
    assert api(obs, "cmd=whitelist_search&q=aa:bb:cc")["ids"][0] == {"id": "AABBCC000000", "type": "MAC"}
    assert api(obs, "cmd=whitelist_clear") == {"ok": True, "entries": 0}
    assert export_all(obs) == (b"id,type\n", 1)
    ans = import_parts(obs, first, size=1777)
    assert ans == {"ok": True, "added": 602, "entries": 602}
    assert export_all(obs)[0] == first  # the same bytes


@pytest.mark.parametrize("name, data, needle", [
    ("binary", b"id\n11223344\n\x00\x01\x02\xff\xfe\n55667788\n", "line 3: binary data"),
    ("bad id in the middle", b"id\n" + b"".join(b"%08X\n" % (0x20000000 + i) for i in range(300)) + b"0A0B0C\n"
     + b"".join(b"%08X\n" % (0x30000000 + i) for i in range(300)), "line 302: not a valid ID"),
    ("1 MB in parts", b"11223344\n" * (1 << 17), "CSV larger than 65536 bytes"),
])
def test_malformed_csv_is_refused_whole_and_changes_nothing(env, name, data, needle):
    fw, obs = env
    before, _ = export_all(obs)
    ans = import_parts(obs, data)
    assert needle in ans["error"], ans
    assert "4, 7 or 10 byte" in ans["error"] if "valid ID" in needle else True
    assert export_all(obs)[0] == before


def test_a_1_mb_csv_in_one_message_is_refused_by_size(env):
    fw, obs = env
    before, _ = export_all(obs)
    ans = api(obs, "cmd=whitelist_import", b"11223344\n" * (1 << 17))
    assert "larger than 4096 bytes" in ans["error"]
    assert export_all(obs)[0] == before


def test_the_whitelist_survives_a_restart(env):
    fw, obs = env
    assert api(obs, "cmd=whitelist_delete&id=04A1B2C3D4E5F6_2")["entries"] == 601  # one appended delete
    before, _ = export_all(obs)
    fw.stop()
    fw.start()  # the same file system: the whitelist is read from flash again
    wait_subscribed(obs)
    assert export_all(obs)[0] == before
    assert api(obs, "cmd=whitelist_search&q=04A1B2")["ids"] == []


def test_switched_off_authorization_imports_nothing_and_every_car_charges():
    """No wallbox requires authorization and free charging is off (the defaults): nothing of authorization is
    imported (only the session journal), a car charges at once, and switching a box's requirement on at run time
    takes effect."""
    with Firmware() as fw:
        fw.ctl("set_adc", name="cp", mv=9000)
        assert wait_for(lambda: fw.ctl("evse")["cp"] == "B")
        fw.ctl("set_adc", name="cp", mv=6000)
        assert wait_for(lambda: fw.ctl("board")["outputs"]["contactor"] == 1, timeout=6)
        auth_modules = ("loadpilot.sessions.auth", "loadpilot.sessions.ids", "loadpilot.sessions.whitelist",
                        "loadpilot.api.auth_commands")
        assert not [m for m in fw.ctl("modules") if m in auth_modules]
        fw.ctl("set_adc", name="cp", mv=12000)
        assert wait_for(lambda: fw.ctl("evse")["cp"] == "A")
        fw.ctl("config_set", values={"devices": [{"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse",
                                                  "auth_required": True}]})
        assert "loadpilot.sessions.auth" in fw.ctl("modules")
        fw.ctl("set_adc", name="cp", mv=9000)
        assert wait_for(lambda: fw.ctl("evse")["cp"] == "B")
        fw.ctl("set_adc", name="cp", mv=6000)
        assert wait_for(lambda: status_of(fw, "E1")["reason"] == "auth", timeout=8)
        # the next car never saw a PWM signal: the contactor stayed open all along
        assert fw.ctl("board")["outputs"]["contactor"] == 0 and fw.ctl("evse")["offered_ma"] == 0
        assert fw.read_output().count("connected -> charging") == 1  # the first car only
