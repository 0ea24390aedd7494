"""The TCP server's admission rules on CPython with a stepped clock: which connection a newcomer evicts, and the
deadline for a started frame. The same rules on the MicroPython binary, with real sockets, are in
integration/test_modbus_tcp_server.py and test_modbus_tcp_admission.py."""
import asyncio
import struct

import pytest

import mpshim
from loadpilot.modbus import pdu, tcp_server
from loadpilot.modbus.image import RegisterImage


@pytest.fixture
def clock(monkeypatch):
    c = mpshim.FakeClock(100000)
    mpshim.use_clock(c)

    async def fake_sleep(ms):
        c.advance_ms(ms)
        await asyncio.sleep(0)
    monkeypatch.setattr(tcp_server.asyncio, "sleep_ms", fake_sleep, raising=False)
    yield c
    mpshim.use_clock(None)


def make_server(**kw):
    r = pdu.Router()
    r.add(1, RegisterImage(0, 10))
    return tcp_server.ModbusTcpServer(r, **kw)


def occupy(slot, last_ms, served, in_request=False):
    slot.busy = True
    slot.last_ms = last_ms
    slot.served = served
    slot.in_request = in_request


def test_newcomer_evicts_the_oldest_connection_without_a_complete_request_first(clock):
    server = make_server()
    a, b, c, d = server._slots
    occupy(a, 10000, served=True)               # a master, idle the longest
    occupy(b, 99000, served=False)              # bytes but no whole frame, recent
    occupy(c, 98000, served=False)              # the same, older
    occupy(d, 500, served=False, in_request=True)  # inside its first request
    assert server._victim() is c
    c.served = True
    assert server._victim() is b
    b.served = True
    assert server._victim() is a  # all have completed requests: the longest idle since its last one
    a.in_request = True
    assert server._victim() is c
    for s in server._slots:
        s.in_request = True
    assert server._victim() is None  # nobody is evicted mid-answer


def test_a_slot_being_handed_over_is_not_taken_twice(clock):
    server = make_server(max_clients=2)
    a, b = server._slots
    occupy(a, 1000, served=False)
    occupy(b, 2000, served=False)
    a.reserved = True
    assert server._victim() is b
    b.reserved = True
    assert server._victim() is None and server._free_slot() is None


class TrickleSocket:
    """Sends one byte of a frame every interval_ms (by the stepped clock), never all of it."""

    def __init__(self, clock, interval_ms, frame):
        self.clock = clock
        self.interval_ms = interval_ms
        self.frame = frame
        self.next_ms = clock.ticks_ms()
        self.sent = 0

    def readinto(self, buf, n=None):
        if self.clock.ticks_ms() < self.next_ms or self.sent >= len(self.frame) - 1:
            return None
        buf[0] = self.frame[self.sent]
        self.sent += 1
        self.next_ms += self.interval_ms
        return 1

    def write(self, buf, off, n):
        raise AssertionError("nothing to answer")


def test_a_trickled_frame_is_closed_at_the_frame_deadline_not_kept_alive_by_its_bytes(clock):
    server = make_server(frame_timeout_ms=1000, idle_timeout_ms=60000)
    frame = struct.pack(">HHHB", 1, 0, 254, 1) + bytes(253)
    sock = TrickleSocket(clock, 200, frame)
    t0 = clock.ticks_ms()
    why = asyncio.run(server._serve(server._slots[0], sock))
    assert why == tcp_server._SLOW
    assert 1000 <= clock.ticks_ms() - t0 <= 1100
    assert 5 <= sock.sent <= 7


def test_idleness_counts_from_the_last_complete_request(clock):
    server = make_server(idle_timeout_ms=5000)
    request = struct.pack(">HHHB", 1, 0, 6, 1) + struct.pack(">BHH", 3, 0, 1)

    class OneRequestThenSilence:
        def __init__(self):
            self.sent = bytearray()
            self.calls = 0

        def readinto(self, buf, n=None):
            self.calls += 1
            if self.calls == 200:  # after nearly 2 s of silence
                self.request_ms = clock.ticks_ms()
                buf[:len(request)] = request
                return len(request)
            return None

        def write(self, buf, off, n):
            self.sent += bytes(buf[off:off + n])
            return n

    sock = OneRequestThenSilence()
    t0 = clock.ticks_ms()
    why = asyncio.run(server._serve(server._slots[0], sock))
    assert why == tcp_server._IDLE and sock.sent[7:] == b"\x03\x02\x00\x00"
    assert sock.request_ms - t0 > 1000
    assert 5000 <= clock.ticks_ms() - sock.request_ms <= 5020  # 5 s after the request, not after the connect
