"""Random and malformed input through pdu.serve and through the TCP server's connection loop (MBAP
reassembly) on CPython, with a scripted socket: over 10,000 PDUs and frames in all."""
import asyncio
import struct
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadpilot.modbus import pdu, tcp_server
from loadpilot.modbus.image import RegisterImage
from modbus_fuzz import DrawSource, make_pdu


def make_router():
    img = RegisterImage(100, 300)
    for i in range(300):
        img.set_u16(100 + i, i * 7)
    img.set_read_only(150, 5)
    small = RegisterImage(0, 10, functions=(4,))
    r = pdu.Router()
    r.add(1, img)
    r.add(5, small)
    return r


@st.composite
def pdus(draw):
    """Mostly plausible requests with random fields, sometimes raw noise (modbus_fuzz.make_pdu, the generator
    the firmware fuzzers use too)."""
    return make_pdu(DrawSource(draw))


@settings(max_examples=6000, deadline=None, suppress_health_check=list(HealthCheck))
@given(req=pdus(), unit=st.sampled_from([1, 5]))
def test_serve_answers_every_pdu_sanely(req, unit):
    handler = make_router().get(unit)
    before = bytes(handler.buf)
    out = bytearray(pdu.MAX_PDU)
    n = pdu.serve(handler, memoryview(req), len(req), memoryview(out))
    fc = req[0]
    assert 2 <= n <= pdu.MAX_PDU
    if out[0] & 0x80:
        assert n == 2 and out[0] == fc | 0x80 and out[1] in (1, 2, 3, 4)
        assert bytes(handler.buf) == before  # a refused request changes nothing
    else:
        assert out[0] == fc and fc in handler.functions
        if fc in (3, 4):
            qty = (req[3] << 8) | req[4]
            off = ((req[1] << 8) | req[2]) - handler.base
            assert n == 2 + 2 * qty and out[1] == 2 * qty
            assert bytes(out[2:n]) == before[off * 2:(off + qty) * 2]
        else:
            assert n == 5 and bytes(out[:5]) == req[:5]


class ScriptedSocket:
    """Hands out the byte stream in the given chunk sizes (None = nothing to read yet), records writes."""

    def __init__(self, stream, cuts):
        self.chunks = deque()
        pos = 0
        for c in cuts:
            if c is None:
                self.chunks.append(None)
                continue
            if pos >= len(stream):
                break
            self.chunks.append(stream[pos:pos + c])
            pos += c
        if pos < len(stream):
            self.chunks.append(stream[pos:])
        self.sent = bytearray()

    def readinto(self, buf, n=None):
        if not self.chunks:
            return 0  # peer closed
        c = self.chunks[0]
        if c is None:
            self.chunks.popleft()
            return None
        n = len(buf) if n is None else min(n, len(buf))
        take = c[:n]
        buf[:len(take)] = take
        if len(take) < len(c):
            self.chunks[0] = c[len(take):]
        else:
            self.chunks.popleft()
        return len(take)

    def write(self, buf, off, n):
        n = min(n, 100)  # partial writes exercise the resend loop
        self.sent += bytes(buf[off:off + n])
        return n


@pytest.fixture(autouse=True)
def fast_sleep(monkeypatch):
    async def no_wait(ms):
        await asyncio.sleep(0)
    monkeypatch.setattr(tcp_server.asyncio, "sleep_ms", no_wait, raising=False)


def run_conn(stream, cuts, router=None):
    server = tcp_server.ModbusTcpServer(router or make_router(), idle_timeout_ms=10 ** 9)
    sock = ScriptedSocket(stream, cuts)
    why = asyncio.run(server._serve(server._slots[0], sock))
    return why, bytes(sock.sent), server


def split_frames(data):
    frames = []
    while data:
        tid, proto, length, unit = struct.unpack(">HHHB", data[:7])
        assert proto == 0 and 2 <= length <= 254
        frames.append((tid, unit, data[7:6 + length]))
        data = data[6 + length:]
    return frames


CUTS = st.lists(st.one_of(st.none(), st.integers(1, 30), st.integers(1, 600)), max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(reqs=st.lists(st.tuples(pdus(), st.sampled_from([1, 5, 9])), min_size=1, max_size=25), cuts=CUTS)
def test_pipelined_split_streams_get_one_right_answer_per_frame(reqs, cuts):
    reqs = [(p[:253], u) for p, u in reqs]
    stream = b"".join(struct.pack(">HHHB", i, 0, len(p) + 1, u) + p for i, (p, u) in enumerate(reqs))
    why, sent, server = run_conn(stream, cuts)
    assert why == tcp_server._CLOSED
    reference = make_router()
    expected = []
    for i, (p, u) in enumerate(reqs):
        out = bytearray(pdu.MAX_PDU)
        h = reference.get(u)
        if h is None:
            n = pdu.exception(out, p[0], pdu.GATEWAY_NO_TARGET)
        else:
            n = pdu.serve(h, memoryview(p), len(p), memoryview(out))
        expected.append((i, u, bytes(out[:n])))
    assert split_frames(sent) == expected
    assert server.requests == len(reqs)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(stream=st.binary(min_size=0, max_size=700), cuts=CUTS)
def test_garbage_streams_end_cleanly(stream, cuts):
    why, sent, _ = run_conn(stream, cuts)
    assert why in (tcp_server._CLOSED, tcp_server._PROTOCOL)
    for tid, unit, rpdu in split_frames(sent):  # whatever was answered is well-formed Modbus TCP
        assert 2 <= len(rpdu) <= pdu.MAX_PDU


def test_protocol_id_and_bad_lengths_end_the_connection():
    good = struct.pack(">HHHB", 1, 0, 6, 1) + struct.pack(">BHH", 3, 100, 1)
    for bad in (struct.pack(">HHHB", 2, 1, 6, 1) + b"\x03\x00\x64\x00\x01",
                struct.pack(">HHHB", 2, 0, 1, 1) + b"\x03",
                struct.pack(">HHHB", 2, 0, 255, 1) + bytes(254)):
        why, sent, _ = run_conn(good + bad + good, [])
        assert why == tcp_server._PROTOCOL
        assert split_frames(sent) == [(1, 1, b"\x03\x02\x00\x00")]  # the frame before was answered


class SilentSocket:
    """A connected client that never sends anything."""

    def readinto(self, buf, n=None):
        return None

    def write(self, buf, off, n):
        raise AssertionError("nothing to answer")


def test_idle_connection_is_closed_after_idle_timeout(monkeypatch):
    import mpshim
    clock = mpshim.FakeClock(1000)
    mpshim.use_clock(clock)
    slept = []

    async def fake_sleep(ms):
        slept.append(ms)
        clock.advance_ms(ms)
        await asyncio.sleep(0)
    monkeypatch.setattr(tcp_server.asyncio, "sleep_ms", fake_sleep, raising=False)
    try:
        server = tcp_server.ModbusTcpServer(make_router(), idle_timeout_ms=5000, poll_ms=10)
        why = asyncio.run(server._serve(server._slots[0], SilentSocket()))
    finally:
        mpshim.use_clock(None)
    assert why == tcp_server._IDLE
    assert 5000 <= sum(slept) <= 5010
    assert max(slept) == 10 and slept.count(1) <= 20  # fast polling only right after activity


def test_close_ends_idle_connections():
    server = tcp_server.ModbusTcpServer(make_router())

    async def run():
        task = asyncio.ensure_future(server._serve(server._slots[0], SilentSocket()))
        await asyncio.sleep(0.01)
        assert not task.done()
        server.close()
        return await task
    assert asyncio.run(run()) == tcp_server._CLOSED
