"""CPython tests of the RTU master's error paths and the proxy handler, against a scripted fake slave on a
fake UART (the happy paths and real timing run on the binary in integration/)."""
import asyncio

import pytest

from loadpilot.modbus import crc, pdu, proxy, serial_settings
from loadpilot.modbus.errors import BadResponse, CrcError, ModbusError, ModbusTimeout
from loadpilot.modbus.rtu_master import RtuMaster

SETTINGS = serial_settings.parse("COM1,115200,8,n,1")


def frame(unit, body):
    b = bytearray([unit]) + bytearray(body) + b"\0\0"
    crc.append_crc(b, len(b) - 2)
    return bytes(b)


class ScriptedUart:
    """Answers each written request with the next scripted reply (bytes, or None for silence)."""
    char_us = 87

    def __init__(self, replies):
        self.replies = list(replies)
        self.inbox = bytearray()
        self.requests = []
        self.de = []

    def write(self, b):
        self.requests.append(bytes(b))
        reply = self.replies.pop(0) if self.replies else None
        if reply is not None:
            self.inbox += reply
        return len(b)

    def tx_done(self):
        return True

    def set_de(self, v):
        self.de.append(v)

    def any(self):
        return len(self.inbox)

    def readinto(self, buf, n):
        k = min(n, len(self.inbox))
        buf[:k] = self.inbox[:k]
        del self.inbox[:k]
        return k


def run(coro):
    return asyncio.run(coro)


def corrupt(f):
    b = bytearray(f)
    b[-1] ^= 0xFF
    return bytes(b)


GOOD_READ = frame(3, b"\x03\x04\x00\x0a\x00\x0b")


def test_request_frame_on_the_wire_and_driver_enable():
    uart = ScriptedUart([GOOD_READ])
    m = RtuMaster(uart, SETTINGS, timeout_ms=200)
    assert run(m.read_holding(3, 0x10, 2)) == [10, 11]
    assert uart.requests == [frame(3, b"\x03\x00\x10\x00\x02")]
    assert uart.de == [1, 0]
    assert m.stats[3].ok == 1


def test_bad_crc_is_counted_and_raised_without_waiting_for_the_timeout():
    uart = ScriptedUart([corrupt(GOOD_READ)])
    m = RtuMaster(uart, SETTINGS, timeout_ms=5000)
    with pytest.raises(CrcError):
        run(asyncio.wait_for(m.read_holding(3, 0, 2), 2))
    s = m.stats[3]
    assert (s.ok, s.crc_errors, s.timeouts, s.last_error) == (0, 1, 0, "crc")


def test_a_retry_after_a_bad_crc_succeeds():
    uart = ScriptedUart([corrupt(GOOD_READ), GOOD_READ])
    m = RtuMaster(uart, SETTINGS, timeout_ms=200, retries=1)
    assert run(m.read_holding(3, 0, 2)) == [10, 11]
    assert len(uart.requests) == 2
    assert (m.stats[3].ok, m.stats[3].crc_errors) == (1, 1)


def test_timeouts_are_counted_per_attempt():
    uart = ScriptedUart([None, None, None])
    m = RtuMaster(uart, SETTINGS, timeout_ms=30, retries=2)
    with pytest.raises(ModbusTimeout):
        run(m.read_input(4, 0, 1))
    assert len(uart.requests) == 3
    assert (m.stats[4].timeouts, m.stats[4].last_error) == (3, "timeout")


def test_an_answer_from_another_unit_is_not_taken():
    uart = ScriptedUart([frame(9, b"\x03\x04\x00\x0a\x00\x0b")])
    m = RtuMaster(uart, SETTINGS, timeout_ms=30)
    with pytest.raises(ModbusTimeout):
        run(m.read_holding(3, 0, 2))


def test_answers_that_do_not_fit_the_request_are_bad_responses():
    uart = ScriptedUart([frame(3, b"\x03\x02\x00\x0a"), frame(3, b"\x04\x04\x00\x0a\x00\x0b"),
                         frame(3, b"\x06\x00\x05\x00\x08")])
    m = RtuMaster(uart, SETTINGS, timeout_ms=50)
    with pytest.raises(BadResponse):  # 2 registers asked, 1 came
        run(m.read_holding(3, 0, 2))
    with pytest.raises(BadResponse):  # another function code
        run(m.read_holding(3, 0, 2))
    with pytest.raises(BadResponse):  # the echo does not match the write
        run(m.write_single(3, 5, 7))
    assert m.stats[3].bad_responses == 3


def test_exception_answers_raise_modbus_exception():
    uart = ScriptedUart([frame(3, b"\x90\x02")])
    m = RtuMaster(uart, SETTINGS, timeout_ms=50)
    with pytest.raises(ModbusError) as e:
        run(m.write_multiple(3, 100, [1, 2]))
    assert e.value.code == 2
    assert uart.requests == [frame(3, b"\x10\x00\x64\x00\x02\x04\x00\x01\x00\x02")]
    assert (m.stats[3].exceptions, m.stats[3].last_error) == (1, "exception 2")


@pytest.mark.parametrize("call", [
    lambda m: m.read_holding(1, 0, 0), lambda m: m.read_holding(1, 0, 126), lambda m: m.read_holding(1, -1, 1),
    lambda m: m.read_registers(1, 0, 1, fc=6), lambda m: m.write_single(1, 0, 65536),
    lambda m: m.write_multiple(1, 0, []), lambda m: m.write_multiple(1, 0, [0] * 124),
    lambda m: m.write_multiple(1, 0, [1, -1]),
])
def test_bad_arguments_are_refused_before_the_bus(call):
    uart = ScriptedUart([])
    m = RtuMaster(uart, SETTINGS)
    with pytest.raises(ValueError):
        run(call(m))
    assert uart.requests == []


# -- proxy -------------------------------------------------------------------------------------------------

def proxy_call(replies, req, timeout_ms=30):
    uart = ScriptedUart(replies)
    m = RtuMaster(uart, SETTINGS, timeout_ms=timeout_ms)
    router = pdu.Router()
    handlers = proxy.install(router, m, {11: 3})
    h = router.get(11)
    assert h is handlers[11] and h.is_async
    out = bytearray(pdu.MAX_PDU)
    n = run(h.handle(memoryview(req), len(req), memoryview(out)))
    return bytes(out[:n]), uart


def test_proxy_forwards_to_the_mapped_rtu_unit_and_returns_the_answer():
    answer, uart = proxy_call([GOOD_READ], b"\x03\x00\x00\x00\x02")
    assert answer == b"\x03\x04\x00\x0a\x00\x0b"
    assert uart.requests == [frame(3, b"\x03\x00\x00\x00\x02")]


def test_proxy_passes_the_slaves_exception_through():
    answer, _ = proxy_call([frame(3, b"\x83\x02")], b"\x03\x00\x00\x00\x02")
    assert answer == b"\x83\x02"


@pytest.mark.parametrize("reply", [None, corrupt(GOOD_READ)])
def test_proxy_answers_gateway_target_failed_when_the_bus_gives_nothing_usable(reply):
    answer, _ = proxy_call([reply], b"\x03\x00\x00\x00\x02")
    assert answer == b"\x83\x0b"


def test_proxy_refuses_function_codes_it_does_not_forward():
    answer, uart = proxy_call([], b"\x2b\x0e\x01\x00")
    assert answer == b"\xab\x01" and uart.requests == []


def test_proxy_install_checks_rtu_unit_ids():
    with pytest.raises(ValueError):
        proxy.install(pdu.Router(), RtuMaster(ScriptedUart([]), SETTINGS), {1: 0})


def test_proxy_service_follows_the_apps_device_layer():
    # the service binds its units to the master of whatever layer the app holds now: none while it is rebuilt
    from loadpilot.config import schema
    from loadpilot.log import Log
    from loadpilot.modbus.proxy_service import ProxyService

    class Layer:
        def __init__(self, replies):
            self.master = RtuMaster(ScriptedUart(replies), SETTINGS, timeout_ms=30)
            self.asked = []

        def rtu_master(self, st):
            self.asked.append(st.text())
            return self.master

    class Config:
        values = dict(schema.defaults(), modbus_proxy="3,20-21@COM1")

        def get(self, key):
            return self.values[key]

    app = {"layer": Layer([frame(3, b"\x03\x02\x00\x07")])}
    base = pdu.Router()
    base.add(1, "sunspec")
    svc = ProxyService(Config(), base, lambda: app["layer"], Log(), ["COM1"])
    assert sorted(svc.units) == [3, 20, 21] and svc.router.get(1) == "sunspec" and svc.router.get(2) is None
    req = b"\x03\x00\x00\x00\x01"

    def ask(unit):
        out = bytearray(pdu.MAX_PDU)
        n = run(svc.router.get(unit).handle(memoryview(req), len(req), memoryview(out)))
        return bytes(out[:n])

    assert ask(3) == b"\x03\x02\x00\x07"
    assert app["layer"].asked == ["COM1,9600,8,n,1"]  # a port named alone: the default settings
    app["layer"] = None  # the old layer is being closed
    assert ask(3) == b"\x83\x0a"
    app["layer"] = Layer([None])
    assert ask(20) == b"\x83\x0b"  # the new layer's bus, a silent slave
    assert app["layer"].master.port.uart.requests == [frame(20, req)]
    v = svc.view()[0]
    assert v["units"] == [3, 20, 21] and v["forwarded"] == 1 and v["failed"] == 2


# -- RtuDevice: the TCP client's shape on an RTU bus ---------------------------------------------------------

def test_rtu_device_reads_bytes_and_writes_like_the_tcp_client():
    uart = ScriptedUart([GOOD_READ, frame(3, b"\x10\x00\x64\x00\x02"), frame(3, b"\x84\x02")])
    from loadpilot.modbus.rtu_master import RtuDevice
    dev = RtuDevice(RtuMaster(uart, SETTINGS, timeout_ms=50), 3)
    assert bytes(run(dev.read_holding(0, 2))) == b"\x00\x0a\x00\x0b"
    run(dev.write_multiple(100, b"\x00\x01\x00\x02"))
    assert uart.requests[1] == frame(3, b"\x10\x00\x64\x00\x02\x04\x00\x01\x00\x02")
    with pytest.raises(ModbusError) as e:
        run(dev.read_input(0, 1))
    assert (e.value.code, e.value.fc) == (2, 4)
    assert dev.stats()["ok"] == 2 and dev.stats()["exceptions"] == 1
