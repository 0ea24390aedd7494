"""The ESP32 HAL on CPython with fake machine/network/esp32 modules that record every call."""
import asyncio
import copy
import importlib
import json
import os
import sys
import types

import pytest

import mpshim
from loadpilot import board as board_mod
from loadpilot import hal as hal_mod

BOARDS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "boards")


class Recorder:
    def __init__(self):
        self.log = []  # ("pin", gpio, v) / ("uart_write", bytes) / ("txdone", result) ...


def make_fakes(rec, txdone=True):
    machine = types.ModuleType("machine")

    class Pin:
        IN, OUT = 1, 3
        PULL_UP, PULL_DOWN = 2, 1
        IRQ_RISING, IRQ_FALLING = 1, 2

        def __init__(self, gpio, mode=-1, pull=None, value=None):
            self.gpio, self.mode, self.pull = gpio, mode, pull
            self.level = 0 if value is None else value
            self.irq_args = None
            rec.log.append(("pin_init", gpio, mode, pull, value))
            machine.pins[gpio] = self

        def value(self, v=None):
            if v is None:
                return self.level
            self.level = v
            rec.log.append(("pin", self.gpio, v))

        def irq(self, handler=None, trigger=0):
            self.irq_args = (handler, trigger)

        def fire(self, level):  # what the chip does on an edge
            self.level = level
            self.irq_args[0](self)

    class UART:
        def __init__(self, uid, **kw):
            self.id, self.kw = uid, kw
            self.rx = bytearray()
            self.tx_pending = 0  # polls of txdone() that still report "sending"
            self.readinto_calls = 0
            machine.uarts[uid] = self

        def write(self, buf):
            rec.log.append(("uart_write", bytes(buf)))
            self.tx_pending = 3
            return len(buf)

        def any(self):
            return len(self.rx)

        def readinto(self, buf, n=None):
            self.readinto_calls += 1
            n = len(buf) if n is None else n
            if not self.rx:
                return None  # what the ESP32 port returns on EAGAIN
            k = min(n, len(self.rx))
            buf[:k] = self.rx[:k]
            del self.rx[:k]
            return k

        def deinit(self):
            rec.log.append(("uart_deinit", self.id))

    if txdone:
        def _txdone(self):
            done = self.tx_pending == 0
            if not done:
                self.tx_pending -= 1
            rec.log.append(("txdone", done))
            return done
        UART.txdone = _txdone

    class PWM:
        def __init__(self, pin, freq=0, duty_u16=None):
            self.pin, self.freq, self.duties = pin, freq, [duty_u16]
            machine.pwms[pin.gpio] = self

        def duty_u16(self, d):
            self.duties.append(d)

    class ADC:
        ATTN_11DB = 3

        def __init__(self, pin, atten=None):
            self.pin, self.atten, self.uv = pin, atten, 0
            machine.adcs[pin.gpio] = self

        def read_uv(self):
            return self.uv

    class WDT:
        def __init__(self, timeout=5000):
            self.timeout, self.feeds = timeout, 0

        def feed(self):
            self.feeds += 1

    def reset():
        rec.log.append(("reset",))

    machine.Pin, machine.UART, machine.PWM, machine.ADC, machine.WDT, machine.reset = Pin, UART, PWM, ADC, WDT, reset
    machine.pins, machine.uarts, machine.pwms, machine.adcs = {}, {}, {}, {}

    network = types.ModuleType("network")
    network.STA_IF = 0

    class WLAN:
        connected = False
        ip = "192.168.1.50"

        def __init__(self, which):
            assert which == network.STA_IF

        def isconnected(self):
            return WLAN.connected

        def ifconfig(self):
            return (WLAN.ip, "255.255.255.0", "192.168.1.1", "192.168.1.1")

    network.WLAN = WLAN
    esp32 = types.ModuleType("esp32")
    return {"machine": machine, "network": network, "esp32": esp32}


@pytest.fixture
def fakes(request):
    """Install the fake modules, import hal.esp32 fresh against them, and take them away afterwards."""
    rec = Recorder()
    txdone = getattr(request, "param", True)
    mods = make_fakes(rec, txdone=txdone)
    saved = {k: sys.modules.get(k) for k in list(mods) + ["loadpilot.hal.esp32"]}
    sys.modules.update(mods)
    sys.modules.pop("loadpilot.hal.esp32", None)
    esp = importlib.import_module("loadpilot.hal.esp32")
    yield types.SimpleNamespace(rec=rec, machine=mods["machine"], network=mods["network"], esp=esp)
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v


def devkit():
    with open(os.path.join(BOARDS, "esp32_devkit.json")) as f:
        return board_mod.validate(json.load(f))


def test_load_picks_the_esp32_hal_for_an_esp32_board(fakes):
    hal = hal_mod.load(devkit(), "")
    assert hal.name == "esp32" and hal.ctl_address() is None and hal.fs_root == ""


def test_uart_is_built_from_the_board_pins_and_never_waits(fakes):
    hal = fakes.esp.Hal(devkit())
    u = hal.uart("rs485_1", 19200, 8, "E", 1)
    hw = fakes.machine.uarts[2]
    assert hw.kw["tx"] == 17 and hw.kw["rx"] == 16
    assert hw.kw["baudrate"] == 19200 and hw.kw["parity"] == 0 and hw.kw["stop"] == 1
    assert hw.kw["timeout"] == 0 and hw.kw["timeout_char"] == 0
    assert hw.kw["rxbuf"] >= 256 and hw.kw["txbuf"] >= 256
    # 1 start + 8 data + parity + 1 stop at 19200 Bd
    assert u.char_us == (11 * 1000000 + 19199) // 19200
    # DE starts low: the transceiver listens until we talk
    assert ("pin_init", 4, fakes.machine.Pin.OUT, None, 0) in fakes.rec.log


def test_read_returns_zero_when_nothing_is_there_and_never_blocks(fakes):
    u = fakes.esp.Hal(devkit()).uart("rs485_1", 9600)
    hw = fakes.machine.uarts[2]
    buf = bytearray(8)
    assert u.readinto(buf) == 0
    assert hw.readinto_calls == 0  # not even asked: any() said empty
    hw.rx.extend(b"\x01\x03\x00\x00\x00\x02\xc4\x0b\xff\xfe")
    assert u.any() == 10
    assert u.readinto(buf, 3) == 3 and bytes(buf[:3]) == b"\x01\x03\x00"
    assert u.readinto(buf) == 7 and bytes(buf[:7]) == b"\x00\x00\x02\xc4\x0b\xff\xfe"
    assert u.readinto(buf) == 0
    # the port says a byte is there but the driver hands back None (EAGAIN): still 0, not None
    hw.any = lambda: 1
    assert u.readinto(buf) == 0


def test_de_goes_high_before_the_write_and_low_only_after_tx_done(fakes):
    u = fakes.esp.Hal(devkit()).uart("rs485_1", 9600)
    del fakes.rec.log[:]
    asyncio.run(hal_mod.rs485_send(u, b"\x01\x06\x00\x01\x00\x03\x98\x0b"))
    log = [e for e in fakes.rec.log if e[0] in ("pin", "uart_write", "txdone")]
    assert log[0] == ("pin", 4, 1)
    assert log[1] == ("uart_write", b"\x01\x06\x00\x01\x00\x03\x98\x0b")
    assert log[-1] == ("pin", 4, 0)
    polls = [e[1] for e in log[2:-1]]
    assert polls == [False, False, False, True]  # DE stayed high while the UART was still sending


def test_de_stays_high_for_the_frame_time_even_if_txdone_answers_early(fakes):
    clock = mpshim.FakeClock(1000)
    mpshim.use_clock(clock)
    try:
        u = fakes.esp.Hal(devkit()).uart("rs485_1", 9600)
        u.write(b"x" * 10)
        fakes.machine.uarts[2].tx_pending = 0  # the driver claims idle while the bytes are still queued
        clock.advance_ms(10)
        assert not u.tx_done()  # 10 characters at 9600 Bd are 10.4 ms on the wire
        clock.advance_ms(0.5)
        assert u.tx_done()
    finally:
        mpshim.use_clock(None)


@pytest.mark.parametrize("fakes", [False], indirect=True)
def test_tx_done_falls_back_to_the_baud_rate_estimate(fakes):
    clock = mpshim.FakeClock(1000)
    mpshim.use_clock(clock)
    try:
        u = fakes.esp.Hal(devkit()).uart("rs485_1", 9600)
        assert u.char_us == 1042
        u.write(b"x" * 10)
        clock.advance_ms(10)
        assert not u.tx_done()  # 10 characters at 9600 Bd take 10.4 ms, plus one of margin
        clock.advance_ms(1.5)
        assert u.tx_done()
    finally:
        mpshim.use_clock(None)


def test_pwm_duty_maps_onto_duty_u16(fakes):
    p = fakes.esp.Hal(devkit()).pwm("cp")
    hw = fakes.machine.pwms[25]
    assert hw.freq == 1000 and hw.duties == [0]
    for cpct, u16 in ((0, 0), (5000, 32768), (10000, 65535), (1667, 10925)):
        p.duty_cpct(cpct)
        assert hw.duties[-1] == u16
        assert p.duty_cpct() == cpct
    with pytest.raises(ValueError, match="0..10000"):
        p.duty_cpct(10001)
    assert hw.duties[-1] == 10925  # a refused duty changes nothing


def test_inverted_pwm_drives_the_complement(fakes):
    b = devkit()
    b["pwm"]["cp"]["invert"] = True
    p = fakes.esp.Hal(b).pwm("cp")
    p.duty_cpct(10000)
    assert fakes.machine.pwms[25].duties[-1] == 0
    p.duty_cpct(2500)
    assert fakes.machine.pwms[25].duties[-1] == 49151


def test_adc_read_mv_applies_the_board_divider(fakes):
    hal = fakes.esp.Hal(devkit())
    cp = hal.adc("cp")  # scale 12/1, offset -15000 mV: the CP front end in boards/README.md
    hw = fakes.machine.adcs[36]
    assert hw.atten == fakes.machine.ADC.ATTN_11DB
    for uv, mv in ((1250000, 0), (2250000, 12000), (1000000, -3000), (250000, -12000), (2000500, 9006)):
        hw.uv = uv
        assert cp.read_mv() == mv
    pp = hal.adc("pp")  # no divider: the pin voltage itself
    fakes.machine.adcs[39].uv = 1980400
    assert pp.read_mv() == 1980
    b = devkit()
    b["adc"]["cp"].update(scale_num=3, scale_den=2, offset_mv=100)
    a = fakes.esp.Hal(b).adc("cp")
    fakes.machine.adcs[36].uv = 1000000
    assert a.read_mv() == 1600


def test_input_irq_on_both_edges_calls_the_handler_with_the_name(fakes):
    seen = []
    i = fakes.esp.Hal(devkit()).input("load_shed", seen.append)
    pin = fakes.machine.pins[32]
    assert pin.mode == fakes.machine.Pin.IN and pin.pull == fakes.machine.Pin.PULL_UP
    handler, trigger = pin.irq_args
    assert trigger == fakes.machine.Pin.IRQ_RISING | fakes.machine.Pin.IRQ_FALLING
    pin.fire(1)
    pin.fire(0)
    assert seen == ["load_shed", "load_shed"]
    assert i.value() == 0
    s0 = fakes.esp.Hal(devkit()).input("s0_1")  # no handler: no IRQ
    assert fakes.machine.pins[34].irq_args is None and fakes.machine.pins[34].pull is None
    fakes.machine.pins[34].level = 1
    assert s0.value() == 1


def test_inverted_input_reports_the_logical_level(fakes):
    b = devkit()
    b["inputs"]["rcd_trip"]["invert"] = True
    i = fakes.esp.Hal(b).input("rcd_trip")
    fakes.machine.pins[13].level = 0
    assert i.value() == 1


def test_outputs_start_low_and_follow_value(fakes):
    o = fakes.esp.Hal(devkit()).output("contactor")
    assert ("pin_init", 26, fakes.machine.Pin.OUT, None, 0) in fakes.rec.log
    o.value(True)
    assert fakes.machine.pins[26].level == 1 and o.value() == 1
    o.value(0)
    assert o.value() == 0


def test_unknown_names_name_the_board_and_what_it_has(fakes):
    hal = fakes.esp.Hal(devkit())
    with pytest.raises(ValueError, match=r"esp32_devkit has no uarts 'rs485_9' \(it has: rs485_1\)"):
        hal.uart("rs485_9")
    with pytest.raises(ValueError, match="no outputs 'relay'.*contactor"):
        hal.output("relay")
    with pytest.raises(ValueError, match="no inputs 's0_3'"):
        hal.input("s0_3")
    with pytest.raises(ValueError, match="no pwm 'fan'"):
        hal.pwm("fan")
    with pytest.raises(ValueError, match="no adc 'temp'"):
        hal.adc("temp")
    with pytest.raises(ValueError, match="parity"):
        hal.uart("rs485_1", 9600, 8, "X", 1)


def test_watchdog_network_and_reset(fakes):
    hal = fakes.esp.Hal(devkit())
    w = hal.watchdog(8000)
    assert w.timeout == 8000
    w.feed()
    assert w.feeds == 1
    assert hal.network() == (False, None)
    fakes.network.WLAN.connected = True
    assert hal.network() == (True, "192.168.1.50")
    fakes.network.WLAN.connected = False

    class Lan:
        def isconnected(self):
            return True

        def ipconfig(self, what):
            assert what == "addr4"
            return ("10.0.0.7", "255.255.255.0")

    hal.lan = Lan()
    assert hal.network() == (True, "10.0.0.7")
    hal.reset()
    assert fakes.rec.log[-1] == ("reset",)


def test_uart_without_de_pin_still_sends(fakes):
    b = copy.deepcopy(devkit())
    del b["uarts"]["rs485_1"]["de"]
    u = fakes.esp.Hal(b).uart("rs485_1")
    del fakes.rec.log[:]
    asyncio.run(hal_mod.rs485_send(u, b"ab"))
    assert [e for e in fakes.rec.log if e[0] == "pin"] == []
    assert ("uart_write", b"ab") in fakes.rec.log
