"""EvseTask wiring on CPython with a fake real-board HAL: the ADC returns the 1 kHz PWM waveform in time,
so the burst sampling, the RCD handler and the output order are exercised as on a device."""
import asyncio
import importlib
import sys
import types

import pytest

import mpshim
from loadpilot.evse.task import EvseTask


def _esp32_sample_cp():
    """The real board's burst sampler (hal/esp32.py), imported with a stand-in `machine` module."""
    had = "machine" in sys.modules
    if not had:
        sys.modules["machine"] = types.ModuleType("machine")
    try:
        return importlib.import_module("loadpilot.hal.esp32").Hal.sample_cp
    finally:
        if not had:
            del sys.modules["machine"]
            sys.modules.pop("loadpilot.hal.esp32", None)  # test_hal_esp32 imports it with its own fakes

BOARD = {
    "outputs": {"contactor": 1, "phase_relay": 2},
    "inputs": {"rcd_trip": {}, "s0_1": {}, "contactor_feedback": {}},
    "pwm": {"cp": {}}, "adc": {"cp": {}, "pp": {}},
    "features": {"evse": True, "rcd": True, "s0": True, "contactor_feedback": False, "phase_switching": True},
}


class FakeHal:
    name = "fake"

    def __init__(self, clock):
        self.clock = clock
        self.events = []
        self.ev_mv = 12000   # the high level the EV's resistors produce
        self.pp_mv = 595     # 220 ohm with 1 k to 3.3 V: 32 A
        self.duty = 10000
        self.inputs = {}
        self.reads = 0
        hal = self

        class Out:
            def __init__(self, name):
                self.name, self.v = name, None

            def value(self, v=None):
                if v is None:
                    return self.v
                if v != self.v:
                    hal.events.append((hal.clock.ticks_us(), self.name, v))
                self.v = v

        class In:
            def __init__(self, name, handler):
                self.name, self.handler, self.v = name, handler, 0

            def value(self):
                return self.v

            def set(self, v):
                self.v = v
                if self.handler:
                    self.handler(self)

        class Pwm:
            def duty_cpct(self, d):
                hal.duty = d
                hal.events.append((hal.clock.ticks_us(), "pwm", d))

        class Adc:
            def __init__(self, name):
                self.name = name

            def read_mv(self):
                hal.clock.advance_ms(0.015)  # one ADC read takes ~15 us
                hal.reads += 1
                if self.name == "pp":
                    return hal.pp_mv
                d = hal.duty
                if d == 0:
                    return -12000
                if d == 10000:
                    return hal.ev_mv
                high = (hal.clock.ticks_us() % 1000) < d // 10
                return hal.ev_mv if high else -12000

        self._out, self._in, self._pwm, self._adc = Out, In, Pwm, Adc
        self.outs = {}

    def output(self, name):
        return self.outs.setdefault(name, self._out(name))

    def input(self, name, handler=None):
        self.inputs[name] = self._in(name, handler)
        return self.inputs[name]

    def pwm(self, name):
        return self._pwm()

    def adc(self, name):
        return self._adc(name)

    sample_cp = _esp32_sample_cp()


@pytest.fixture
def rig():
    clock = mpshim.FakeClock(5000)
    mpshim.use_clock(clock)
    hal = FakeHal(clock)
    task = EvseTask(hal, BOARD, settings={"stop_timeout_ms": 3000})
    yield clock, hal, task
    mpshim.use_clock(None)


def run(clock, task, ms):
    end = clock.ticks_ms() + ms
    while clock.ticks_ms() < end:
        task.tick(clock.ticks_ms())
        clock.advance_ms(10)


def test_session_at_6a_is_read_correctly_through_the_pwm(rig):
    clock, hal, task = rig
    task.limits.modbus_ma = 6000  # 10 % duty: the high half lasts only 100 us
    run(clock, task, 100)
    hal.ev_mv = 9000
    run(clock, task, 200)
    assert hal.duty == 1000 and task.view()["state"] == "connected"
    hal.ev_mv = 6000
    run(clock, task, 500)
    v = task.view()
    assert v["state"] == "charging" and v["error"] == "none" and hal.outs["contactor"].v == 1
    assert v["limit"]["reason"] == "modbus"
    hal.ev_mv = 9000
    run(clock, task, 20)
    assert hal.outs["contactor"].v == 0


def test_rcd_handler_opens_without_a_tick_and_the_tick_latches_the_error(rig):
    clock, hal, task = rig
    run(clock, task, 100)
    hal.ev_mv = 9000
    run(clock, task, 200)
    hal.ev_mv = 6000
    run(clock, task, 200)
    assert hal.outs["contactor"].v == 1
    n = len(hal.events)
    hal.inputs["rcd_trip"].set(1)
    assert hal.outs["contactor"].v == 0 and hal.events[n][1:] == ("contactor", 0)
    hal.inputs["rcd_trip"].set(0)  # a short pulse, gone before the next tick
    run(clock, task, 50)
    v = task.view()
    assert v["error"] == "rcd_trip" and v["cp_register"] == 9 and hal.outs["contactor"].v == 0


def test_pause_signals_before_opening(rig):
    clock, hal, task = rig
    run(clock, task, 100)
    hal.ev_mv = 9000
    run(clock, task, 200)
    hal.ev_mv = 6000
    run(clock, task, 200)
    n = len(hal.events)
    task.set_enabled(False)
    run(clock, task, 500)  # the EV keeps C for now
    assert hal.outs["contactor"].v == 1 and hal.duty == 10000
    hal.ev_mv = 9000
    run(clock, task, 20)
    names = [e[1:] for e in hal.events[n:]]
    assert names == [("pwm", 10000), ("contactor", 0)]


def test_s0_counts_active_edges_only(rig):
    clock, hal, task = rig
    s0 = hal.inputs["s0_1"]
    for _ in range(7):
        clock.advance_ms(200)
        s0.set(1)
        clock.advance_ms(50)
        s0.set(0)
    run(clock, task, 1100)
    assert task.s0[0].pulses == 7 and task.view()["s0"][0]["energy_wh"] == 7


def test_cancelled_task_leaves_the_contactor_open(rig):
    clock, hal, task = rig
    mpshim.use_clock(None)  # asyncio needs real time here
    hal.clock = mpshim.FakeClock(0)

    async def scenario():
        t = asyncio.create_task(task.run())
        await asyncio.sleep(0.05)
        hal.outs["contactor"].value(1)
        task._applied_contactor = 1
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(scenario())
    assert hal.outs["contactor"].v == 0
