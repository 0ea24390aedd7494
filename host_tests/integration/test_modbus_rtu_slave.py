"""Our RTU slave on the real MicroPython binary, on a pty bus, against pymodbus 3.16 (a serial RTU client)
and against raw bytes on the wire (malformed input), plus its allocation behaviour."""
import json
import logging
import os
import time

import pytest
import serial
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusIOException

import ptybus
from loadpilot.modbus import crc

pytestmark = pytest.mark.mp
HERE = os.path.dirname(os.path.abspath(__file__))
SLAVE_SCRIPT = open(os.path.join(HERE, "mp_rtu_slave.py")).read()
SILENCE_S = 0.25  # how long we listen before calling the line silent (a 9600-baud answer starts in ~5 ms)
ANSWER_S = 3.0  # how long we wait for an answer we expect

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@pytest.fixture(scope="module")
def slave():
    bus = ptybus.PtyPair()
    proc = ptybus.start_micropython(SLAVE_SCRIPT, bus.fw)
    try:
        ptybus.wait_line(proc, "slave ready")
        yield bus.peer, proc
    finally:
        out = ptybus.stop(proc)
        bus.close()
        if "Traceback" in out:
            print(out)


def stats(proc):
    proc.stdin.write("stats\n")
    proc.stdin.flush()
    return json.loads(ptybus.wait_line(proc, '"tag": "stats"'))


@pytest.fixture
def client(slave):
    c = ModbusSerialClient(slave[0], baudrate=9600, timeout=1, retries=0)
    assert c.connect()
    yield c
    c.close()


@pytest.fixture
def wire(slave):
    s = serial.Serial(slave[0], 9600, timeout=0)
    s.reset_input_buffer()
    yield s
    s.close()


def frame(unit, pdu):
    b = bytearray([unit]) + bytearray(pdu) + b"\0\0"
    crc.append_crc(b, len(b) - 2)
    return bytes(b)


def ask(ser, data, expect_len=None):
    """Put data on the line and return what comes back: with expect_len, wait (generously, the machine may be
    busy) until that many bytes are there; without, listen SILENCE_S and return whatever came."""
    time.sleep(0.01)  # more than t3.5 at 9600 baud after the previous exchange
    ser.write(data)
    got = b""
    deadline = time.monotonic() + (ANSWER_S if expect_len else SILENCE_S)
    while time.monotonic() < deadline and (expect_len is None or len(got) < expect_len):
        chunk = ser.read(300)
        if chunk:
            got += chunk
        else:
            time.sleep(0.002)
    if expect_len:
        time.sleep(0.02)  # anything extra after the answer would be a bug: catch it
        got += ser.read(300)
    return got


def read_ok(ser, unit=1, addr=0, count=2):
    got = ask(ser, frame(unit, bytes([3, addr >> 8, addr & 255, 0, count])), 5 + 2 * count)
    assert len(got) == 5 + 2 * count and crc.check(got, len(got)), got
    return [int.from_bytes(got[3 + 2 * i:5 + 2 * i], "big") for i in range(count)]


def test_pymodbus_reads_and_writes_two_units(client):
    assert client.read_holding_registers(0, count=5, device_id=1).registers == [100, 101, 102, 103, 104]
    assert client.read_input_registers(10, count=2, device_id=1).registers == [110, 111]
    assert client.read_holding_registers(1000, count=3, device_id=7).registers == [7000, 7001, 7002]
    assert not client.write_register(20, 4711, device_id=1).isError()
    assert not client.write_registers(1010, [1, 2, 65535], device_id=7).isError()
    assert client.read_holding_registers(19, count=3, device_id=1).registers == [119, 4711, 121]
    assert client.read_holding_registers(1009, count=5, device_id=7).registers == [7009, 1, 2, 65535, 7013]
    # a full-size read
    regs = client.read_holding_registers(40, count=125, device_id=1).registers
    assert regs == [140 + i for i in range(125)]


def test_pymodbus_sees_the_exception_codes(client):
    r = client.read_input_registers(1000, count=2, device_id=7)  # unit 7 has no FC 4
    assert r.isError() and r.exception_code == 1
    r = client.read_holding_registers(190, count=20, device_id=1)  # past the end of unit 1's image
    assert r.isError() and r.exception_code == 2
    r = client.write_registers(1128, [1, 2, 3], device_id=7)  # the last one is past the end
    assert r.isError() and r.exception_code == 2
    assert client.read_holding_registers(1128, count=2, device_id=7).registers == [7128, 7129]  # unchanged
    assert client.read_holding_registers(0, count=1, device_id=1).registers == [100]


def test_unknown_unit_is_silent(client, wire):
    assert ask(wire, frame(9, b"\x03\x00\x00\x00\x01")) == b""
    with pytest.raises(ModbusIOException):  # pymodbus gives up: nobody answered
        client.read_holding_registers(0, count=1, device_id=9)
    assert client.read_holding_registers(0, count=1, device_id=1).registers == [100]


def test_broadcast_write_is_applied_to_every_unit_and_never_answered(wire):
    # FC16 broadcast to register 1100: only unit 7 has it; unit 1 refuses it silently
    assert ask(wire, frame(0, b"\x10\x04\x4c\x00\x02\x04\x12\x34\xab\xcd")) == b""
    assert read_ok(wire, unit=7, addr=1100, count=2) == [0x1234, 0xABCD]
    assert ask(wire, frame(0, b"\x06\x00\x32\x00\x2a")) == b""  # FC6 broadcast to register 50
    assert read_ok(wire, unit=1, addr=50, count=1) == [42]
    assert ask(wire, frame(0, b"\x03\x00\x00\x00\x01")) == b""  # a broadcast read: nothing to answer


def malformed_round(wire):
    """Every kind of bad input, each followed by a good request that must still be served."""
    good = frame(1, b"\x03\x00\x00\x00\x01")
    bad_crc = bytearray(good)
    bad_crc[-2] ^= 0x5A
    assert ask(wire, bytes(bad_crc)) == b""
    assert read_ok(wire) == [100, 101]
    assert ask(wire, good[:5]) == b""  # truncated
    assert read_ok(wire) == [100, 101]
    assert ask(wire, bytes(range(256)) + bytes(range(44))) == b""  # overlong: 300 bytes
    assert read_ok(wire) == [100, 101]
    assert ask(wire, b"\x00\xff\x13\x37 line noise \xfe") == b""  # garbage, then a frame after silence
    assert read_ok(wire) == [100, 101]
    # FC16 that says 2 registers but carries 3 bytes (byte count 3) -> 03
    assert ask(wire, frame(1, b"\x10\x00\x00\x00\x02\x03\x00\x01\x02"), 5) == frame(1, b"\x90\x03")
    # FC16 with count 2, byte count 4, but 6 data bytes -> 03
    assert ask(wire, frame(1, b"\x10\x00\x00\x00\x02\x04\x00\x01\x00\x02\x00\x03"), 5) == frame(1, b"\x90\x03")
    assert ask(wire, frame(1, b"\x2b\x0e\x01\x00"), 5) == frame(1, b"\xab\x01")  # illegal function
    assert ask(wire, frame(1, b"\x01\x00\x00\x00\x08"), 5) == frame(1, b"\x81\x01")  # no coils here
    assert ask(wire, frame(1, b"\x03\x00\xc8\x00\x01"), 5) == frame(1, b"\x83\x02")  # register 200: illegal address
    assert ask(wire, frame(1, b"\x06\x01\x00\x00\x01"), 5) == frame(1, b"\x86\x02")
    assert ask(wire, frame(1, b"\x03\x00\x00\x00\x7e"), 5) == frame(1, b"\x83\x03")  # 126 registers
    assert ask(wire, frame(1, b"\x03\x00\x00\x00\x00"), 5) == frame(1, b"\x83\x03")  # 0 registers
    assert read_ok(wire) == [100, 101]


def test_malformed_input_gets_silence_or_the_right_exception_and_the_heap_stays_flat(slave, wire):
    proc = slave[1]
    malformed_round(wire)
    before = stats(proc)
    for _ in range(3):
        malformed_round(wire)
    after = stats(proc)
    assert after["crc_errors"] - before["crc_errors"] >= 3 * 2  # bad CRC and garbage
    assert after["overlong"] - before["overlong"] == 3
    assert after["runts"] + after["crc_errors"] > before["runts"] + before["crc_errors"]
    assert after["mem_alloc"] - before["mem_alloc"] <= 256, (before, after)


def test_a_125_register_read_allocates_nothing_in_steady_state():
    # its own bus at 115200 baud so 70 full reads take about a second of modelled wire time
    bus = ptybus.PtyPair()
    args = {"com": "COM1,115200,8,n,1", "alloc": [20, 50], "quiet_uart": True}
    proc = ptybus.start_micropython(SLAVE_SCRIPT, bus.fw, args=args)
    try:
        ptybus.wait_line(proc, "slave ready")
        c = ModbusSerialClient(bus.peer, baudrate=115200, timeout=1, retries=0)
        assert c.connect()
        for _ in range(70):
            assert c.read_holding_registers(0, count=125, device_id=1).registers[124] == 224
        c.close()
        result = json.loads(ptybus.wait_line(proc, '"tag": "alloc"'))
    finally:
        ptybus.stop(proc)
        bus.close()
    assert result == {"tag": "alloc", "bytes": 0, "requests": 50}
