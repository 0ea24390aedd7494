"""One product, on the MicroPython binary with the peers a user has (mosquitto + paho, pymodbus): the local box
is a wallbox like any other in every view, the manager's decisions reach a pushed wallbox's answer, overrides
take effect and end at unplug, and the SunSpec totals follow from the manager's cycle."""
import json
import struct
import time

import pytest
from pymodbus.client import ModbusTcpClient

from firmware_proc import Firmware, free_port, wait_for
from mqtt_peers import Mosquitto, Observer
from test_mqtt_topics import R, api, last_json, pump, wait_subscribed

pytestmark = pytest.mark.mp

DEVICES = [
    {"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "name": "Carport", "desc": "the box itself",
     "max_charging_cur": 16000, "publish_mqtt": True, "publish_modbus": True},
    {"dev_id": "E2", "driver": "http_input", "address": "mqtt", "publish_mqtt": True},
    {"dev_id": "M1", "driver": "http_input", "address": "mqtt", "role": 3},
]


@pytest.fixture(scope="module")
def env():
    broker = Mosquitto().start()
    port = free_port()
    fw = Firmware(config={"modbus_tcp_port": port, "pb_tcp_port": 0, "mqtt_url": "mqtt://127.0.0.1:%d" % broker.port,
                          "mqtt_api_url": "mqtt", "mqtt_dev_info_url": "mqtt", "mqtt_publish_s": 1,
                          "max_total_current": 20000, "devices": DEVICES}).start()
    fw.wait_port(port)
    obs = Observer(broker.port)
    try:
        wait_subscribed(obs)
        fw.ctl("set_adc", name="cp", mv=9000)
        wait_for(lambda: fw.ctl("evse")["cp"] == "B")
        fw.ctl("set_adc", name="cp", mv=6000)  # a car charges at the box itself
        yield fw, obs, port
    finally:
        obs.close()
        fw.stop()
        broker.close()


def grid(obs, ma):
    obs.publish(R + "/set/M1", json.dumps({"current": [ma, ma, ma], "voltage": [230, 230, 230]}), qos=1)


def newest(obs, topic, pred=lambda v: True, timeout=10):
    pump(obs, 0)
    return last_json(obs, topic, pred, timeout=timeout, after=len(obs.messages))


def device(info, dev_id):
    return [d for d in info["devices"] if d["dev_id"] == dev_id][0]


def f32(regs, i):
    return struct.unpack(">f", struct.pack(">HH", regs[i], regs[i + 1]))[0]


def test_the_local_box_reports_like_any_wallbox_everywhere(env):
    fw, obs, port = env
    grid(obs, 4000)
    info = newest(obs, R + "/get/dev_info", lambda v: device(v, "E1")["state"] == 3)
    e1 = device(info, "E1")
    assert e1["com_err"] is False and e1["dev_type"] == "evse_powerbrain" and e1["desc"] == "the box itself"
    for key, kind in (("com_err_secs", int), ("com_errors", int), ("last_error", str), ("used_phases", int),
                      ("pause_time", int), ("pause_min_time", int), ("paused", bool)):
        assert isinstance(e1[key], kind), (key, e1[key])
    assert e1["used_phases"] == 7
    params = info["params"]
    for key in ("time", "cycle_time", "avail_evse_power", "cons_evse_power"):
        assert isinstance(params[key], int), (key, params[key])
    assert 1500 <= params["cycle_time"] <= 2500
    assert newest(obs, R + "/get/E1")["state"] == 3
    # SunSpec ID+1: E1's model 113 says charging (+62 status 3, +63 device 1)
    with ModbusTcpClient("127.0.0.1", port=port) as c:
        regs = c.read_holding_registers(40002, count=66, device_id=2).registers
        assert regs[0] == 113 and regs[62] == 3 and regs[63] == 1  # offsets from the model's ID register


def test_sunspec_totals_come_from_the_manager(env):
    fw, obs, port = env
    grid(obs, 7000)
    time.sleep(3)  # a manager cycle, then the images' refresh

    def totals():
        with ModbusTcpClient("127.0.0.1", port=port) as c:
            out = []
            for a in (40070, 40196, 40322, 40448, 40574, 40700, 40826):  # the seven 213s (SPEC-NOTES)
                r = c.read_holding_registers(a, count=6, device_id=1).registers
                assert r[0] == 213
                out.append((f32(r, 2), f32(r, 4)))  # A, AphA
            return out
    t = totals()
    assert t[0][1] == 7.0  # grid consumption: the grid meter's L1
    assert t[4][0] > 0  # used wallbox power: E1 charges
    assert t[5][0] > 0  # available wallbox power: the budget
    assert t[6][0] == 18.0  # fault power: E2 never pushed data, so 6 A on 3 phases are reserved for it
    assert t[2][0] != t[2][0]  # generators: no generation meter, not implemented (NaN)


def test_a_pushed_wallbox_is_answered_with_the_managers_current(env):
    fw, obs, _ = env
    grid(obs, 4000)
    obs.publish(R + "/set/E2", json.dumps({"state": 3, "current": [6000, 6000, 6000]}), qos=1)
    time.sleep(2.5)  # the manager's next cycle decides for E2
    pump(obs, 0.2)  # the first message's answer is in, so the next one found is the new answer
    n = len(obs.messages)
    obs.publish(R + "/set/E2", json.dumps({"state": 3, "current": [6000, 6000, 6000]}), qos=1)
    ans = last_json(obs, R + "/set_res/E2", after=n)
    e2 = device(newest(obs, R + "/get/dev_info"), "E2")
    st = fw.status()
    alloc = [d for d in st["devices"] if d["dev_id"] == "E2"][0]["alloc_ma"]
    assert 6000 <= ans["charging_current"] <= 16000 and ans["charging_current"] != 32000
    assert abs(ans["charging_current"] - alloc) <= 2000  # the set-point of that cycle (slow up: +2 A a cycle)
    assert ans["charging_enabled"] is True and e2["state"] == 3


def test_override_disables_limits_and_ends_at_unplug(env):
    fw, obs, _ = env
    grid(obs, 4000)
    assert wait_for(lambda: fw.ctl("evse")["offered_ma"] >= 6000, timeout=10)
    assert api(obs, "cmd=override_device&dev_id=E1&flags=C") == {"ok": True}
    assert wait_for(lambda: fw.ctl("evse")["offered_ma"] == 0, timeout=5)  # the next cycle
    e1 = device(newest(obs, R + "/get/dev_info"), "E1")
    assert e1["charging_enabled"] is False and e1["override"]["no_charging"] is True
    assert api(obs, "cmd=override_device&dev_id=E1&flags=c&mamps=7000") == {"ok": True}
    assert wait_for(lambda: 6000 <= fw.ctl("evse")["offered_ma"] <= 7000, timeout=5)
    time.sleep(4.5)  # slow up would have passed 7 A by now
    assert fw.ctl("evse")["offered_ma"] <= 7000
    fw.ctl("set_adc", name="cp", mv=12000)  # unplugged: the transaction's overrides end
    assert wait_for(lambda: device(newest(obs, R + "/get/dev_info"), "E1")["override"] is None, timeout=8)
    fw.ctl("set_adc", name="cp", mv=9000)
    wait_for(lambda: fw.ctl("evse")["cp"] == "B")
    fw.ctl("set_adc", name="cp", mv=6000)
    assert wait_for(lambda: fw.ctl("evse")["offered_ma"] > 7000, timeout=15)  # a new car is not limited
