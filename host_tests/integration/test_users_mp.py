"""Users with PINs (reference/users.md, docs/users.md) on the MicroPython binary, with real HTTP clients and
mosquitto + paho: the admin creates users (get_new_user_id, set_user, get_users, del_user); a user reads and
changes itself with its ID and no admin credentials, but not its wallboxes or priority, nor anyone else; a wrong
ID waits like a wrong password; a wallbox with a user charges only for that user's PIN or RFID (whitelisted IDs
are refused with reason auth); override_device C needs the admin or a user of the box; and no user ID reaches
get_dev_info, an MQTT topic or the log."""
import json
import time

import pytest

from firmware_proc import Firmware, free_port, wait_for
from mqtt_peers import Mosquitto, Observer
from test_http_mp import Client
from test_mqtt_topics import R, api, pump, wait_subscribed

pytestmark = pytest.mark.mp

ADMIN = "Adm1n-S3cret"
DEVICES = [{"dev_id": "E2", "driver": "http_input", "address": "", "name": "Garage"},
           {"dev_id": "E3", "driver": "http_input", "address": "", "name": "Carport", "prio": 3}]
ANNA_CARD = "0A1B2C3D"
BOB_CARD = "0B0B0B0B"
WHITE_CARD = "07A47731"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    broker = Mosquitto().start()
    port = free_port()
    fs = str(tmp_path_factory.mktemp("fs"))
    fw = Firmware(fs_dir=fs, config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "http_port": port,
                                     "mqtt_url": "mqtt://127.0.0.1:%d" % broker.port, "mqtt_api_url": "mqtt",
                                     "mqtt_dev_info_url": "mqtt", "mqtt_log_url": "mqtt", "mqtt_publish_s": 1,
                                     "admin_pwd": ADMIN, "devices": DEVICES, "max_total_current": 32000}).start()
    obs = Observer(broker.port)
    try:
        fw.wait_port(port)
        wait_subscribed(obs)
        yield {"fw": fw, "port": port, "obs": obs, "ids": {}}
    finally:
        obs.close()
        fw.stop()
        broker.close()


def admin(env):
    return Client(env["port"], ("admin", ADMIN))


def anyone(env):
    return Client(env["port"])  # no credentials


def js(res):
    return res[0], json.loads(res[1])


def status_of(fw, dev_id):
    return [d for d in fw.status()["devices"] if d["dev_id"] == dev_id][0]


def push(c, dev_id, **obj):
    s, ans = js(c.req("POST", "/cnf?cmd=set_ajax_evse&dev_id=" + dev_id, body=obj))
    assert s == 200, ans
    return ans


def test_a_box_without_users_imports_nothing_of_them(env):
    mods = env["fw"].ctl("modules")
    assert "loadpilot.sessions.users" not in mods and "loadpilot.api.user_cmd" not in mods
    assert "loadpilot.sessions.auth" not in mods  # nothing requires authorization yet


def test_the_admin_creates_and_lists_users(env):
    c = admin(env)
    assert anyone(env).get("cmd=get_users")[0] == 401
    assert anyone(env).get("cmd=get_new_user_id")[0] == 401
    s, anna = js(c.get("cmd=get_new_user_id"))
    s2, bob = js(c.get("cmd=get_new_user_id"))
    assert s == s2 == 200 and isinstance(anna, str) and anna.isdigit() and len(anna) >= 8 and anna != bob
    s, ans = js(c.req("POST", "/cnf?cmd=set_user", body={
        "id": anna, "name": "Anna", "display": True, "dev_ids": ["E2"], "priority": 5,
        "rfids": [{"id": "0a:1b:2c:3d", "name": "Card", "ac_auth": True, "ac_ovch": False, "used_phases": 0}]}))
    assert s == 200 and ans == {"ok": True, "created": True, "users": 1}
    s, ans = js(c.req("POST", "/cnf?cmd=set_user", body={"id": bob, "name": "Bob", "dev_ids": ["E3"],
                                                          "rfids": [{"id": BOB_CARD, "name": "", "ac_auth": True}]}))
    assert s == 200 and ans["created"] is True
    s, ans = js(c.req("POST", "/cnf?cmd=set_user", body={"id": "12345678", "dev_ids": ["E9"]}))
    assert s == 400 and "E9" in ans["error"] and "configured wallbox" in ans["error"]
    s, ans = js(c.req("POST", "/cnf?cmd=set_user", body={"id": "12345678", "rfids": [{"id": BOB_CARD}]}))
    assert s == 400 and "already in use" in ans["error"]  # an RFID belongs to one user
    s, users = js(c.get("cmd=get_users"))
    assert s == 200 and [u["name"] for u in users] == ["Anna", "Bob"]
    a = users[0]
    assert a == {"id": anna, "name": "Anna", "display": True, "show": True, "dev_ids": ["E2"], "priority": 5,
                 "rfids": [{"id": ANNA_CARD, "name": "Card", "ac_auth": True, "ac_ovch": False, "used_phases": 0}],
                 "charging_rules": []}
    # a temporary user goes again (del_user: our addition, the document has no delete)
    s, tmp = js(c.get("cmd=get_new_user_id"))
    assert js(c.req("POST", "/cnf?cmd=set_user", body={"id": tmp, "name": "Tmp"}))[1]["users"] == 3
    assert anyone(env).get("cmd=del_user&id=" + tmp)[0] == 401
    assert js(c.get("cmd=del_user&id=" + tmp)) == (200, {"ok": True, "users": 2})
    assert js(c.get("cmd=del_user&id=" + tmp))[0] == 400
    env["ids"].update(anna=anna, bob=bob)
    mods = env["fw"].ctl("modules")
    assert "loadpilot.sessions.users" in mods and "loadpilot.sessions.auth" in mods
    c.close()


def test_a_user_reads_and_changes_itself_with_its_id_only(env):
    anna, bob = env["ids"]["anna"], env["ids"]["bob"]
    u = anyone(env)
    s, me = js(u.get("cmd=get_user&id=" + anna))
    assert s == 200 and me["name"] == "Anna" and me["dev_ids"] == ["E2"]
    me["name"] = "Anna B"
    me["rfids"].append({"id": "11223344556677", "name": "PIN", "ac_auth": True, "ac_ovch": True, "used_phases": 1})
    s, ans = js(u.req("POST", "/cnf?cmd=set_user", body=me))  # the whole object back: same wallboxes, priority
    assert s == 200 and ans["created"] is False
    assert js(u.get("cmd=get_user&id=" + anna))[1]["name"] == "Anna B"
    for change in ({"dev_ids": ["E2", "E3"]}, {"priority": 10}, {"priority": "maintain"}, {"dev_ids": []}):
        body = dict(me, **change)
        s, ans = js(u.req("POST", "/cnf?cmd=set_user", body=body))
        assert s == 403 and "set by the admin" in ans["error"], change
    s, me2 = js(admin(env).get("cmd=get_user&id=" + anna))
    assert me2["dev_ids"] == ["E2"] and me2["priority"] == 5 and len(me2["rfids"]) == 2
    # no list, no new user and no ID without the admin login
    assert u.get("cmd=get_users")[0] == 401
    s, ans = js(u.req("POST", "/cnf?cmd=set_user", body={"name": "Anna"}))
    assert s == 403 and "user ID" in ans["error"]
    assert bob not in json.dumps(me) and bob not in json.dumps(me2)
    u.close()


def test_a_wrong_user_id_waits_like_a_wrong_password(env):
    anna = env["ids"]["anna"]
    u = anyone(env)
    t = time.monotonic()
    s, ans = js(u.get("cmd=get_user&id=99999999"))
    first = time.monotonic() - t
    assert s == 403 and ans["error"] == "get_user: no user with this ID"
    t = time.monotonic()
    assert u.get("cmd=get_user&id=99999998")[0] == 403
    second = time.monotonic() - t
    assert 0.45 <= first and second >= 0.95  # 0.5 s, then 1 s: the login's growing per-client delay
    assert u.get("cmd=get_user&id=" + anna)[0] == 200  # a valid user ID does not clear the count
    t = time.monotonic()
    s, me = js(u.req("POST", "/cnf?cmd=set_user", body={"id": "10000000000001", "name": "x"}))  # creating
    assert s == 403 and "admin login" in me["error"] and time.monotonic() - t >= 1.9
    # Anna trying Bob's card as hers learns that it exists only as slowly
    me = js(u.get("cmd=get_user&id=" + anna))[1]
    t = time.monotonic()
    s, ans = js(u.req("POST", "/cnf?cmd=set_user", body=dict(me, rfids=[{"id": BOB_CARD}])))
    assert s == 403 and "in use" in ans["error"] and time.monotonic() - t >= 3.9
    assert js(admin(env).get("cmd=get_user&id=" + anna))[1]["rfids"][0]["id"] == ANNA_CARD  # unchanged
    assert admin(env).get("cmd=get_params")[0] == 200  # the admin's login clears the count
    t = time.monotonic()
    assert u.get("cmd=get_user&id=99999997")[0] == 403 and time.monotonic() - t < 0.95
    assert admin(env).get("cmd=get_params")[0] == 200
    u.close()


def test_a_box_with_a_user_charges_only_for_that_user(env):
    fw = env["fw"]
    anna, bob = env["ids"]["anna"], env["ids"]["bob"]
    c = admin(env)
    u = anyone(env)
    assert push(c, "E2", state=2)["charging_current"] == 0
    assert wait_for(lambda: status_of(fw, "E2")["reason"] == "auth", timeout=6)
    assert js(c.get("cmd=whitelist_add&id=" + WHITE_CARD))[0] == 200
    s, ans = js(c.get("cmd=enter_rfid&rfid=%s&dev_id=E2" % WHITE_CARD))  # whitelisted, but no user of E2
    assert s == 400 and "not one of E2's users" in ans["error"]
    s, ans = js(c.get("cmd=enter_rfid&rfid=0C0C0C0C&dev_id=E2"))
    assert s == 400 and "not one of E2's users" in ans["error"]
    assert js(u.get("cmd=enter_rfid&rfid=%s&dev_id=E2" % WHITE_CARD))[0] == 403  # not a user: needs the login
    s, ans = js(u.get("cmd=enter_rfid&rfid=%s&dev_id=E2" % bob))  # Bob may charge at E3 only
    assert s == 400 and "not one of E2's users" in ans["error"] and bob not in ans["error"]
    time.sleep(2.5)
    assert push(c, "E2", state=2)["charging_current"] == 0 and status_of(fw, "E2")["reason"] == "auth"
    s, ans = js(u.get("cmd=enter_rfid&rfid=" + anna))  # Anna's PIN, no admin, no device: her waiting car
    assert s == 200 and ans == {"ok": True, "dev_id": "E2", "result": "authorized"}
    assert wait_for(lambda: push(c, "E2", state=2)["charging_current"] >= 6000, timeout=8)
    e2 = [d for d in json.loads(c.get("cmd=get_dev_info")[1])["devices"] if d["dev_id"] == "E2"][0]
    assert e2["auth"] == "authorized" and e2["rfid"] == "Anna B"  # her name, never her ID
    # override_device C: the admin or a user of E2 (PIN or RFID), nobody else
    s, ans = js(u.get("cmd=override_device&dev_id=E2&flags=C"))
    assert s == 403 and "admin login or the ID/PIN or RFID of a user of E2" in ans["error"]
    assert js(u.get("cmd=override_device&dev_id=E2&flags=C&rfid=" + bob))[0] == 403
    assert js(u.get("cmd=override_device&dev_id=E2&flags=E&rfid=" + anna))[0] == 400  # E/e: the admin's
    assert js(u.get("cmd=override_device&dev_id=E2&flags=C&rfid=" + anna)) == (200, {"ok": True})
    assert wait_for(lambda: push(c, "E2", state=2)["charging_enabled"] is False, timeout=8)
    assert js(u.get("cmd=override_device&dev_id=E2&flags=c&rfid=" + ANNA_CARD)) == (200, {"ok": True})
    assert wait_for(lambda: push(c, "E2", state=2)["charging_current"] >= 6000, timeout=8)
    # Bob's card read by E3's own reader starts his car there
    assert push(c, "E3", state=2, rfid=BOB_CARD)["charging_current"] == 0
    assert wait_for(lambda: push(c, "E3", state=2)["charging_current"] >= 6000, timeout=8)
    push(c, "E2", state=1)  # Anna unplugs: the session shows her name and method "user"
    push(c, "E3", state=1)
    assert wait_for(lambda: any(x["rfid"] == "Anna B" and x["auth"] == "user"
                                for x in js(c.get("cmd=get_sessions"))[1]["latest"]), timeout=6)
    assert b"Anna B" in c.get("cmd=export_sessions")[1]
    c.close()
    u.close()


def test_the_charging_users_priority_replaces_the_wallboxs(env):
    fw = env["fw"]
    c = admin(env)
    assert js(c.get("cmd=set_params&max_total_current=10000"))[0] == 200  # room for one car at 6 A
    push(c, "E2", state=2)
    push(c, "E3", state=2, rfid=BOB_CARD)  # Bob: priority "maintain", so E3's own 3
    assert js(anyone(env).get("cmd=enter_rfid&dev_id=E2&rfid=" + env["ids"]["anna"]))[0] == 200  # Anna: 5
    # E2's own priority is 1, below E3's 3: only Anna's 5 puts her car first
    assert wait_for(lambda: push(c, "E2", state=2)["charging_current"] >= 6000 and
                    push(c, "E3", state=2)["charging_current"] == 0, timeout=10)
    assert status_of(fw, "E3")["reason"] in ("priority_pause", "pause_hold")
    push(c, "E2", state=1)  # Anna leaves: her priority goes with her, and Bob's car gets the current
    assert wait_for(lambda: push(c, "E3", state=2)["charging_current"] >= 6000, timeout=10)
    push(c, "E3", state=1)
    assert js(c.get("cmd=set_params&max_total_current=32000"))[0] == 200
    c.close()


def without_echo(m):
    """A message's bytes, an api_res refusal without its "query" (the echo of the caller's own request)."""
    if m[0] == R + "/api_res" and m[1][:1] == b"{":
        v = json.loads(m[1])
        if "error" in v:
            v["query"] = ""
            return json.dumps(v).encode()
    return m[1]


def test_no_user_id_in_get_dev_info_topics_or_the_log(env):
    fw, obs = env["fw"], env["obs"]
    anna, bob = env["ids"]["anna"], env["ids"]["bob"]
    users = api(obs, "cmd=get_users")  # MQTT api/: the admin's list, but answers are published
    assert [x["id"] for x in users] == ["***", "***"] and [x["name"] for x in users] == ["Anna B", "Bob"]
    assert "ask over HTTP" in api(obs, "cmd=get_new_user_id")["error"]
    ans = api(obs, "cmd=get_user&id=" + anna)
    assert ans["id"] == "***" and ans["name"] == "Anna B"
    ans = api(obs, "cmd=enter_rfid&dev_id=E3&rfid=" + anna)  # refused: Anna is no user of E3
    assert "not one of E3's users" in ans["error"] and anna not in ans["error"]  # (the query echoes the request)
    c = admin(env)
    info = c.get("cmd=get_dev_info")[1]
    pump(obs, 1.5)
    for uid in (anna, bob):
        assert uid.encode() not in info
        # what the box publishes; a refusal's "query" echoes the caller's own request, which its topic carries anyway
        assert not [m[0] for m in obs.messages if not m[0].startswith(R + "/api/") and uid.encode() in
                    without_echo(m)], uid
        assert uid not in fw.read_output()
    c.close()


def test_users_survive_a_restart_and_still_lock_their_box(env):
    fw = env["fw"]
    fw.stop()
    fw.start()
    fw.wait_port(env["port"])
    c = admin(env)
    assert [u["name"] for u in json.loads(c.get("cmd=get_users")[1])] == ["Anna B", "Bob"]
    assert push(c, "E2", state=2)["charging_current"] == 0
    assert wait_for(lambda: status_of(fw, "E2")["reason"] == "auth", timeout=6)
    c.close()
