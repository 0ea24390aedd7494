"""A car unplugged and the next one plugged in between two looks of an observer, on the MicroPython binary: the
board's own charge point (the virtual EV leaves the pilot at A for a few hundred ms: control socket pulse_adc)
and a wallbox pushing over HTTP (set_ajax_evse state 1 and state 2 back to back), both requiring authorization. The new car is a
new car everywhere: it does not inherit the last car's authorization (it waits for its own RFID), it is not held
in the last car's pause (min_pause, reason pause_hold) once authorized, and the sessions are two, the first
ended at its own meter with its own RFID (site.DeviceState.plugins; docs/sessions.md)."""
import base64
import http.client
import json
import time

import pytest

from firmware_proc import Firmware, free_port, wait_for

pytestmark = pytest.mark.mp

CARD_A = "0A0B0C0D"
CARD_B = "11223344"
DEVICES = [
    {"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "max_charging_cur": 16000, "auth_required": True},
    {"dev_id": "E2", "driver": "http_input", "address": "mqtt", "max_charging_cur": 16000, "auth_required": True},
]


@pytest.fixture(scope="module")
def env():
    port = free_port()
    fw = Firmware(config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "http_port": port,
                          "max_total_current": 32000, "vehicle_connection_timeout_s": 300,
                          "devices": DEVICES}).start()
    try:
        fw.wait_port(port)
        for card in (CARD_A, CARD_B):
            assert cnf(port, "whitelist_add&id=" + card)["ok"]
        yield fw, port
    finally:
        fw.stop()


def cnf(port, query):
    """/cnf?cmd=<query> with the factory login -> the JSON answer."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        auth = "Basic " + base64.b64encode(b"admin:JuiCeMeUP!").decode()
        c.request("GET", "/cnf?cmd=" + query, headers={"Authorization": auth})
        return json.loads(c.getresponse().read())
    finally:
        c.close()


def device(fw, dev_id):
    return [d for d in fw.status()["devices"] if d["dev_id"] == dev_id][0]


def auth_state(port, dev_id):
    return [d for d in cnf(port, "get_dev_info")["devices"] if d["dev_id"] == dev_id][0]["auth"]


def rfid(port, card, dev_id):
    return cnf(port, "enter_rfid&rfid=%s&dev_id=%s" % (card, dev_id))


def latest(port, n):
    return cnf(port, "get_sessions&n=%d" % n)["latest"]


def energy(fw):
    return fw.ctl("evse")["s0"][0]["energy_wh"]


def pulses(fw, n):
    for _ in range(n):
        fw.ctl("set_input", name="s0_1", value=1)
        fw.ctl("set_input", name="s0_1", value=0)
        time.sleep(0.03)


def never(fn, seconds):
    """fn() stays false for `seconds` (checked every 50 ms)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if fn():
            return False
        time.sleep(0.05)
    return True


def test_a_car_replaced_at_the_box_within_one_manager_cycle_is_a_new_car(env):
    fw, port = env
    fw.ctl("set_adc", name="cp", mv=9000)
    assert wait_for(lambda: fw.ctl("evse")["cp"] == "B")
    fw.ctl("set_adc", name="cp", mv=6000)  # the first car asks to charge (C)
    assert wait_for(lambda: auth_state(port, "E1") == "waiting", 5)
    assert rfid(port, CARD_A, "E1")["result"] == "authorized"
    assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, 8)
    assert wait_for(lambda: device(fw, "E1")["alloc_ma"] > 0, 5)  # the manager has decided for this car
    card = CARD_A
    # three replugs, the pilot at A for 300, 150 and 120 ms: each within one manager cycle (2 s); the last two
    # also within one poll of the session tracker (250 ms)
    for n, ms in enumerate((300, 150, 120)):
        e0 = energy(fw)
        pulses(fw, 3 + n)  # this car's own energy
        assert wait_for(lambda: energy(fw) == e0 + 3 + n)
        time.sleep(0.4)  # the tracker has read the meter
        seq = fw.ctl("sessions")["hi_seq"]
        fw.ctl("pulse_adc", name="cp", mv=12000, ms=ms, back=6000)  # unplugged; the next car plugged in (C)
        # the new car does not inherit the last one's authorization: it waits for its own RFID
        assert wait_for(lambda: auth_state(port, "E1") == "waiting", 3)
        assert never(lambda: fw.ctl("evse")["contactor"] == 1, 2.5)
        assert device(fw, "E1")["reason"] == "auth"
        # two sessions: the last car's ended at its own meter, with its own RFID
        assert wait_for(lambda: fw.ctl("sessions")["hi_seq"] == seq + 1 and fw.ctl("sessions")["open"] == 1, 3)
        s = latest(port, 1)[0]
        assert (s["dev_id"], s["reason"], s["rfid"], s["meter_end_wh"]) == ("E1", "EVDisconnected", card, e0 + 3 + n)
        assert s["energy_wh"] >= 3 + n
        # authorized, it starts at once: not held in the last car's pause (min_pause, 300 s)
        card = (CARD_B, CARD_A)[n % 2]
        assert rfid(port, card, "E1")["result"] == "authorized"
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, 6), device(fw, "E1")["reason"]
        assert device(fw, "E1")["reason"] != "pause_hold"
        assert wait_for(lambda: device(fw, "E1")["alloc_ma"] > 0, 5)
    fw.ctl("set_adc", name="cp", mv=12000)
    assert wait_for(lambda: auth_state(port, "E1") == "none", 3)
    assert wait_for(lambda: fw.ctl("sessions")["open"] == 0, 3)
    s = latest(port, 1)[0]
    assert (s["dev_id"], s["rfid"]) == ("E1", card)


def push(port, state, wh, amps):
    """set_ajax_evse for E2 (the wallbox's HTTP input: what a pushed box sends) -> the answer: its set-point."""
    return cnf(port, "set_ajax_evse&dev_id=E2&state=%d&total_energy=%d&current=%d,%d,%d" % (state, wh, amps, amps,
                                                                                          amps))


def test_a_car_replaced_at_a_pushed_wallbox_between_two_pushes_is_a_new_car(env):
    fw, port = env
    push(port, 3, 1000, 16000)
    assert wait_for(lambda: auth_state(port, "E2") == "waiting", 5)
    assert wait_for(lambda: fw.ctl("sessions")["open"] == 1, 3)  # the session starts at 1000 Wh
    assert rfid(port, CARD_A, "E2")["result"] == "authorized"
    assert wait_for(lambda: device(fw, "E2")["alloc_ma"] > 0, 5)
    # a wallbox pushes every few seconds; it is told the manager's set-point once the manager has decided for it
    assert wait_for(lambda: push(port, 3, 1400, 16000)["charging_current"] > 0, 5)
    time.sleep(0.5)
    seq = fw.ctl("sessions")["hi_seq"]
    # unplugged and the next car plugged in, pushed back to back: no observer sees the state 1
    push(port, 1, 1500, 0)
    assert push(port, 2, 1500, 0)["charging_current"] == 0  # the new car is not told the last one's set-point
    assert wait_for(lambda: auth_state(port, "E2") == "waiting", 3)
    assert wait_for(lambda: device(fw, "E2")["reason"] == "auth", 4)
    assert device(fw, "E2")["alloc_ma"] == 0
    assert wait_for(lambda: fw.ctl("sessions")["hi_seq"] == seq + 1, 3)
    s = latest(port, 1)[0]
    assert (s["dev_id"], s["rfid"], s["meter_start_wh"], s["meter_end_wh"]) == ("E2", CARD_A, 1000, 1500)
    assert s["energy_wh"] == 500
    assert rfid(port, CARD_B, "E2")["result"] == "authorized"
    # authorized, it is told a current at once: not held in the last car's pause (min_pause, 300 s)
    assert wait_for(lambda: push(port, 2, 1500, 0)["charging_current"] > 0, 5), device(fw, "E2")["reason"]
    assert device(fw, "E2")["reason"] != "pause_hold"
    push(port, 3, 1700, 16000)
    time.sleep(0.5)
    push(port, 1, 1700, 0)
    assert wait_for(lambda: fw.ctl("sessions")["open"] == 0, 3)
    s = latest(port, 1)[0]
    assert (s["rfid"], s["meter_start_wh"], s["energy_wh"]) == (CARD_B, 1500, 200)
