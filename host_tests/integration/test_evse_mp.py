"""The local charge point on the real MicroPython binary: the firmware boots with the unix_sim board (feature
`evse`) and a virtual EV drives the CP line over the control socket."""
import json
import os
import time

import pytest

from firmware_proc import BOARDS, Firmware, run_snippet, wait_until

pytestmark = pytest.mark.mp


def wait_for(fn, timeout=5.0):
    return wait_until(fn, timeout, step=0.01)  # fine steps: some states (stopping) last only a few ticks


def evse(fw):
    return fw.ctl("evse")


def last_event(events, name, value=None, after_us=None):
    for t, n, v in reversed(events):
        if n == name and (value is None or v == value) and (after_us is None or t >= after_us):
            return t
    return None


def plug_in_and_charge(fw):
    fw.ctl("set_adc", name="cp", mv=9000)  # EV connected: B
    v = wait_for(lambda: (lambda v: v if v["duty_cpct"] not in (0, 10000) else None)(evse(fw)))
    assert v["state"] == "connected" and v["contactor"] == 0
    assert v["duty_cpct"] == 5333 and v["offered_ma"] == 31998  # 32 A cable coded on the virtual PP
    assert fw.ctl("board")["pwm"]["cp"][1] == 5333
    time.sleep(0.1)  # the car needs a moment to see the PWM
    fw.ctl("set_adc", name="cp", mv=6000)  # C
    wait_for(lambda: fw.ctl("board")["outputs"]["contactor"] == 1)
    assert evse(fw)["state"] == "charging"


@pytest.fixture
def fw():
    f = Firmware()
    f.start()
    yield f
    f.stop()


def test_session_plug_charge_leave_c(fw):
    v = wait_for(lambda: (lambda v: v if v["ticks"] > 3 else None)(evse(fw)))
    assert v["state"] == "idle" and v["cp"] == "A" and v["error"] == "none" and v["duty_cpct"] == 10000
    plug_in_and_charge(fw)
    fw.ctl("events", clear=True)
    fw.ctl("set_adc", name="cp", mv=9000)  # the EV leaves C
    wait_for(lambda: fw.ctl("board")["outputs"]["contactor"] == 0)
    ev = fw.ctl("events")
    t_adc = last_event(ev, "adc.cp", 9000)
    t_open = last_event(ev, "contactor", 0, t_adc)
    assert t_adc is not None and t_open is not None
    latency_ms = (t_open - t_adc) / 1000.0
    assert 0 <= latency_ms < 1000  # the bar (100 ms) is measured by tools/bench/contactor.py
    v = evse(fw)
    assert v["state"] == "connected" and v["cp"] == "B"
    # pause from outside: no power is signalled, the contactor stays until the EV leaves C
    fw.ctl("set_adc", name="cp", mv=6000)
    wait_for(lambda: fw.ctl("board")["outputs"]["contactor"] == 1)
    timeouts = evse(fw)["stop_timeouts"]
    fw.ctl("evse_cmd", enable=0)
    v = wait_for(lambda: (lambda v: v if v["state"] == "stopping" or v["stop_timeouts"] > timeouts else None)(
        evse(fw)))
    if v["state"] == "stopping":
        assert fw.ctl("board")["pwm"]["cp"][1] == 10000 and fw.ctl("board")["outputs"]["contactor"] == 1
        fw.ctl("set_adc", name="cp", mv=9000)
        wait_for(lambda: fw.ctl("board")["outputs"]["contactor"] == 0)
    else:
        # the firmware process was held off the CPU past the 3 s stop window (a loaded host): the EV "kept
        # drawing", so the contactor was opened by the timeout, which is the other correct outcome
        assert v["contactor"] == 0 and v["stop_timeouts"] == timeouts + 1, v
        fw.ctl("set_adc", name="cp", mv=9000)
    # unplug
    fw.ctl("set_adc", name="cp", mv=12000)
    wait_for(lambda: evse(fw)["state"] == "idle")


def test_rcd_trip_opens_at_once_and_latches(fw):
    plug_in_and_charge(fw)
    fw.ctl("events", clear=True)
    fw.ctl("set_input", name="rcd_trip", value=1)
    # the handler opened the contactor while serving this very control request, before any CP tick
    ev = fw.ctl("events")
    assert [(n, v) for _, n, v in ev] == [("contactor", 0)]
    v = wait_for(lambda: (lambda v: v if v["state"] == "error" else None)(evse(fw)))
    assert v["error"] == "rcd_trip" and v["cp_register"] == 9 and v["contactor"] == 0
    fw.ctl("set_input", name="rcd_trip", value=0)
    time.sleep(0.2)
    assert evse(fw)["error"] == "rcd_trip"  # still plugged in: stays in error
    assert fw.ctl("board")["outputs"]["contactor"] == 0
    fw.ctl("set_adc", name="cp", mv=12000)  # unplug
    wait_for(lambda: evse(fw)["error"] == "none")
    assert [t["restarts"] for t in fw.status()["tasks"] if t["name"] == "evse"] == [0]


def test_diode_fault_and_phase_switch_on_a_board_with_cp_low(tmp_path):
    with open(os.path.join(BOARDS, "unix_sim.json")) as f:
        board = json.load(f)
    board["adc"]["cp_low"] = {"pin": "cp_low_adc"}
    path = str(tmp_path / "board.json")
    with open(path, "w") as f:
        json.dump(board, f)
    with Firmware(board=path) as fw:
        fw.ctl("set_adc", name="cp_low", mv=-12000)
        plug_in_and_charge(fw)
        fw.ctl("set_adc", name="cp_low", mv=-9000)  # diode shorted: negative half pulled up
        wait_for(lambda: evse(fw)["error"] == "diode_fault")
        assert fw.ctl("board")["outputs"]["contactor"] == 0
        fw.ctl("set_adc", name="cp", mv=12000)
        fw.ctl("set_adc", name="cp_low", mv=-12000)
        wait_for(lambda: evse(fw)["error"] == "none")
        # phases: nothing plugged in, so the relay switches without a hold
        res = fw.ctl("evse_cmd", phases=1)
        assert res["phases"] == "accepted"
        wait_for(lambda: fw.ctl("board")["outputs"]["phase_relay"] == 1)
        assert evse(fw)["phases"] == 1
        res = fw.ctl("evse_cmd", phases=3)
        assert res["phases"] == "deferred"  # minimum interval between switches (5 min by default)


def test_s0_pulses_count_energy(fw):
    for _ in range(5):
        fw.ctl("set_input", name="s0_1", value=1)
        fw.ctl("set_input", name="s0_1", value=0)
        time.sleep(0.03)
    v = wait_for(lambda: (lambda v: v if v["s0"][0]["energy_wh"] == 5 else None)(evse(fw)), timeout=3)
    assert v["s0"][0]["pulses"] == 5 and v["s0"][1]["pulses"] == 0


def test_cp_tick_allocates_nothing_while_charging():
    code = r'''
import time, micropython
from loadpilot import board as board_mod, hal as hal_mod
from loadpilot.evse.task import EvseTask
b = board_mod.validate(%s)
hal = hal_mod.load(b)
t = EvseTask(hal, b)
hal.vb.set_adc("cp", 9000)
start = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), start) < 150:
    t.tick(time.ticks_ms())
hal.vb.set_adc("cp", 6000)
t.tick(time.ticks_ms())
assert t.sm.contactor == 1, t.view()
t.tick(time.ticks_ms())
def run(n):  # in a function: module-level loop variables would grow the globals dict
    micropython.heap_lock()
    try:
        for _ in range(n):
            t.tick(time.ticks_ms())
    finally:
        micropython.heap_unlock()
start = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), start) < 1500:  # spans PP and S0 periods
    run(200)
print("ok", t.sm.contactor, t.ticks)
'''
    with open(os.path.join(BOARDS, "unix_sim.json")) as f:
        board = f.read()
    rc, out = run_snippet(code % board.replace("true", "True").replace("false", "False"))
    assert rc == 0, out
    assert "ok 1" in out


def test_welded_contactor_blocks_charging_until_reset(fw):
    plug_in_and_charge(fw)
    fw.ctl("set_adc", name="cp", mv=9000)
    wait_for(lambda: fw.ctl("board")["outputs"]["contactor"] == 0)
    fw.ctl("set_input", name="contactor_feedback", value=1)  # the contacts stay closed
    wait_for(lambda: evse(fw)["error"] == "contactor_welded")
    fw.ctl("set_input", name="contactor_feedback", value=0)
    fw.ctl("set_adc", name="cp", mv=12000)
    time.sleep(0.1)
    fw.ctl("set_adc", name="cp", mv=9000)
    time.sleep(0.1)
    fw.ctl("set_adc", name="cp", mv=6000)
    time.sleep(0.3)
    v = evse(fw)
    assert v["error"] == "contactor_welded" and fw.ctl("board")["outputs"]["contactor"] == 0
    fw.ctl("evse_cmd", reset=1)
    fw.ctl("set_adc", name="cp", mv=9000)
    time.sleep(0.1)
    fw.ctl("set_adc", name="cp", mv=6000)
    wait_for(lambda: fw.ctl("board")["outputs"]["contactor"] == 1)


def test_a_board_without_cp_pwm_boots_with_the_evse_disabled(tmp_path):
    with open(os.path.join(BOARDS, "unix_sim.json")) as f:
        board = json.load(f)
    board["pwm"] = {}
    path = str(tmp_path / "board.json")
    with open(path, "w") as f:
        json.dump(board, f)
    with Firmware(board=path) as fw:
        assert fw.wait_output("local charge point disabled")
        assert fw.status()["board"] == "unix_sim"
        assert "evse" not in [t["name"] for t in fw.status()["tasks"]]
