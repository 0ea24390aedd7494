"""The simulated energy meter (reference/http-api.md soft_meter) on the MicroPython binary: an HTTP-input wallbox
pushed charging without total_energy counts energy from its currents and voltage over time, a session there
records that energy, soft_meter reads and sets it over HTTP and MQTT api/, bad input is refused and changes
nothing, get_dev_info shows it, and the value survives a restart."""
import base64
import http.client
import json
import time

import pytest
from pymodbus.client import ModbusTcpClient

from firmware_proc import Firmware, free_port, wait_for
from mqtt_peers import Mosquitto, Observer
from test_mqtt_topics import api, wait_subscribed

pytestmark = pytest.mark.mp

PW = "JuiCeMeUP!"  # the factory password: this test does not change it
DEVICES = [{"dev_id": "E2", "driver": "http_input", "address": "", "max_charging_cur": 32000},
           {"dev_id": "M3", "driver": "http_input", "address": "", "role": 0}]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    broker = Mosquitto().start()
    port = free_port()
    om = free_port()
    fw = Firmware(fs_dir=str(tmp_path_factory.mktemp("fs")), config={
                          "modbus_tcp_port": free_port(), "pb_tcp_port": 0, "http_port": port, "omcci_tcp_port": om,
                          "mqtt_url": "mqtt://127.0.0.1:%d" % broker.port, "mqtt_api_url": "mqtt",
                          "commit_delay_s": 1, "max_total_current": 63000, "lb_enabled": True,
                          "devices": DEVICES}).start()
    obs = Observer(broker.port)
    try:
        fw.wait_port(port)
        fw.wait_port(om)
        wait_subscribed(obs)
        fw.om = om
        yield fw, port, obs
    finally:
        obs.close()
        fw.stop()
        broker.close()


def get(port, query, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    h = {"Authorization": "Basic " + base64.b64encode(("admin:" + PW).encode()).decode()}
    if body is not None:
        h["Content-Type"] = "application/json"
        c.request("POST", "/cnf?" + query, body=json.dumps(body).encode(), headers=h)
    else:
        c.request("GET", "/cnf?" + query, headers=h)
    r = c.getresponse()
    out = r.status, json.loads(r.read())
    c.close()
    return out


def soft(port, dev="E2"):
    s, v = get(port, "cmd=soft_meter&dev_id=" + dev)
    assert s == 200, v
    return v


def push(port, state, current=None):
    q = "cmd=set_ajax_evse&dev_id=E2&state=%d&max_charging_current=32000" % state
    if current is not None:
        q += "&current=%d,%d,%d&voltage=240,240,240" % (current, current, current)
    s, v = get(port, q)
    assert s == 200, v


def e2_info(port, dev="E2"):
    s, v = get(port, "cmd=get_dev_info")
    assert s == 200
    return [d for d in v["devices"] if d["dev_id"] == dev][0]


def omcci_energy(om):
    with ModbusTcpClient("127.0.0.1", port=om) as c:
        r = c.read_holding_registers(218, count=2, device_id=1)
        assert not r.isError(), r
        return r.registers[0] << 16 | r.registers[1]


def test_charging_without_a_meter_counts_energy_and_the_session_records_it(env):
    fw, port, obs = env
    push(port, 2)  # a car plugged in: the session opens
    wait_for(lambda: get(port, "cmd=get_sessions")[1]["open"], timeout=5)
    before = soft(port)
    t0 = time.monotonic()
    deadline = t0 + 10
    while time.monotonic() < deadline:  # 16 A x 240 V x 3 phases = 11520 W, re-pushed as a box does
        push(port, 3, 16000)
        time.sleep(1)
    elapsed = time.monotonic() - t0
    push(port, 1)  # unplugged: the session ends, the meter stands still
    time.sleep(2.5)  # one manager cycle: what the last interval adds is in
    after = soft(port)
    gained = after - before
    expect = 11520 * elapsed / 3600  # ~32 Wh; a manager cycle (2 s, 6.4 Wh) at either edge is the tolerance
    assert expect - 10 <= gained <= expect + 10, (gained, expect)
    time.sleep(2.5)
    assert soft(port) == after  # state A: nothing more
    info = e2_info(port)
    assert info["soft_meter"] == after and info["total_energy"] == after
    s, v = get(port, "cmd=get_sessions")
    last = v["latest"][0]
    assert last["dev_id"] == "E2" and last["energy_wh"] == gained and gained > 0, last


def test_the_box_itself_without_s0_pulses_counts_and_shows_it_on_omcci(env):
    fw, port, obs = env
    before = soft(port, "E1")
    fw.ctl("set_adc", name="cp", mv=9000)
    assert wait_for(lambda: fw.ctl("evse")["cp"] == "B")
    fw.ctl("set_adc", name="cp", mv=6000)
    assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, timeout=10)
    assert wait_for(lambda: e2_info(port, "E1")["current_l1"] > 0, timeout=5)
    t0 = time.monotonic()
    info = e2_info(port, "E1")
    watts = (info["current_l1"] + info["current_l2"] + info["current_l3"]) * 230 // 1000
    assert watts >= 6 * 230  # the current it offers, on the phases in use
    time.sleep(8)
    fw.ctl("set_adc", name="cp", mv=12000)  # unplugged
    elapsed = time.monotonic() - t0
    time.sleep(2.5)
    gained = soft(port, "E1") - before
    expect = watts * elapsed / 3600
    assert expect - watts * 2.5 / 3600 - 1 <= gained <= expect + watts * 2.5 / 3600 + 1, (gained, expect)
    assert wait_for(lambda: omcci_energy(fw.om) == soft(port, "E1"), timeout=5)


def test_set_and_read_over_http_and_mqtt_and_bad_input_changes_nothing(env):
    fw, port, obs = env
    old = soft(port)
    s, v = get(port, "cmd=soft_meter&dev_id=E2&val=12345")
    assert (s, v) == (200, old)  # the answer is the reading before setting
    assert soft(port) == 12345
    assert api(obs, "cmd=soft_meter&dev_id=E2") == 12345
    assert api(obs, "cmd=soft_meter&dev_id=E2&val=500") == 12345
    assert soft(port) == 500
    for q, word in (("dev_id=M3", "meter"), ("dev_id=E9", "unknown"), ("", "dev_id"),
                    ("dev_id=E2&val=-1", "val"), ("dev_id=E2&val=abc", "val"), ("dev_id=E2&val=1.5", "val"),
                    ("dev_id=E2&val=99999999999", "val"), ("dev_id=E2&val=", "val")):
        s, v = get(port, "cmd=soft_meter&" + q)
        assert s == 400 and word in v["error"], (q, v)
    err = api(obs, "cmd=soft_meter&dev_id=M3&val=7")
    assert "meter, not a wallbox" in err["error"]
    assert soft(port) == 500
    assert e2_info(port)["total_energy"] == 500
    # the setting it is saved in, written with set_params (as import_config does): the count follows
    assert get(port, "cmd=set_params", {"soft_meter_wh": "E2=777"})[0] == 200
    assert soft(port) == 777
    assert get(port, "cmd=soft_meter&dev_id=E2&val=500")[1] == 777


def test_the_reading_survives_a_restart(env):
    fw, port, obs = env
    assert get(port, "cmd=soft_meter&dev_id=E2&val=4321")[1] == 500
    time.sleep(2.5)  # commit_delay_s 1: the save is on flash
    fw.stop()
    fw.start()
    fw.wait_port(port)
    assert soft(port) == 4321
    assert e2_info(port)["soft_meter"] == 4321
