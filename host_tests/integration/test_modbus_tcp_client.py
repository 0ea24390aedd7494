"""Our Modbus TCP client on the MicroPython binary against a pymodbus TCP server and against fake servers."""
import asyncio
import json
import socket
import struct
import threading

import pytest
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

import firmware_proc
from modbus_peers import recv_exact

pytestmark = pytest.mark.mp

CLIENT_PRELUDE = """
import asyncio, json, time
from loadpilot.modbus.tcp_client import ModbusTcpClient, ModbusError, ModbusTimeout, ModbusTransportError, u16
def regs(mv):
    return [u16(mv, i) for i in range(len(mv) // 2)]
out = {}
async def attempt(key, coro):
    try:
        out[key] = await coro
    except ModbusError as e:
        out[key] = ["ModbusError", e.code]
    except ModbusTimeout as e:
        out[key] = ["ModbusTimeout"]
    except ModbusTransportError as e:
        out[key] = ["ModbusTransportError"]
"""


def run_client(body, port):
    code = CLIENT_PRELUDE + "PORT = %d\n" % port + body + "\nprint('RESULT', json.dumps(out))\n"
    rc, output = firmware_proc.run_snippet(code, timeout=60)
    assert rc == 0, output
    line = [ln for ln in output.splitlines() if ln.startswith("RESULT ")]
    assert line, output
    return json.loads(line[-1][7:])


class PymodbusServer:
    """pymodbus ModbusTcpServer with holding/input registers 0..199 (value = address) for unit 1, in a thread.
    Requests for other units get no answer at all (ignore_missing_devices)."""

    def __init__(self):
        self.port = firmware_proc.free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.ready.set()

    async def _serve(self):
        device = ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, list(range(200))),
                                     ir=ModbusSequentialDataBlock(1, [1000 + i for i in range(200)]))
        ctx = ModbusServerContext(devices={1: device}, single=False)
        self.server = ModbusTcpServer(ctx, address=("127.0.0.1", self.port), ignore_missing_devices=True)
        self.loop.call_soon(self.ready.set)
        await self.server.serve_forever()

    def start(self):
        self.thread.start()
        assert self.ready.wait(10) and self.thread.is_alive()
        return self

    def stop(self):
        fut = asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop)
        fut.result(10)
        self.thread.join(10)


@pytest.fixture(scope="module")
def pm_server():
    srv = PymodbusServer().start()
    yield srv
    srv.stop()


def test_reads_and_writes_against_pymodbus(pm_server):
    res = run_client("""
async def main():
    c = ModbusTcpClient('127.0.0.1', PORT, unit=1, timeout_ms=2000)
    out['hr'] = regs(await c.read_holding(10, 5))
    await c.write_single(20, 0xABCD)
    await c.write_multiple(21, [1, 2, 3])
    await c.write_multiple(24, b'\\x00\\x07\\x00\\x08')
    out['after'] = regs(await c.read_holding(19, 7))
    out['long'] = len(await c.read_holding(0, 125))
    await attempt('past_end', c.read_holding(190, 20))
    out['still'] = regs(await c.read_holding(199, 1))
    out['stats'] = c.stats()
    await c.close()
asyncio.run(main())
""", pm_server.port)
    assert res["hr"] == [10, 11, 12, 13, 14]
    assert res["after"] == [19, 0xABCD, 1, 2, 3, 7, 8]
    assert res["long"] == 250
    assert res["past_end"] == ["ModbusError", 2]
    assert res["still"] == [199]
    st = res["stats"]
    assert st["ok"] == 7 and st["exceptions"] == 1 and st["timeouts"] == 0 and st["connects"] == 1
    assert st["last_error"] == "exception 2"


class FakeDevice:
    """A scripted Modbus TCP device: behaviours[i] serves the i-th connection. A behaviour gets the socket.
    answer(conn, stale=False) reads one read request and answers it with register values = addresses,
    first with a late reply carrying the previous transaction id when stale is set."""

    def __init__(self, behaviours):
        self.lst = socket.socket()
        self.lst.bind(("127.0.0.1", 0))
        self.lst.listen(4)
        self.port = self.lst.getsockname()[1]
        self.behaviours = behaviours
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for behave in self.behaviours:
            try:
                conn, _ = self.lst.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(behave, conn), daemon=True).start()

    @staticmethod
    def _serve(behave, conn):
        with conn:
            try:
                behave(conn)
            except (OSError, EOFError):
                pass

    def close(self):
        self.lst.close()


def answer(conn, stale=False):
    tid, proto, length, unit = struct.unpack(">HHHB", recv_exact(conn, 7))
    fc, addr, qty = struct.unpack(">BHH", recv_exact(conn, length - 1))
    if stale:
        conn.sendall(struct.pack(">HHHBBB", (tid - 1) & 0xFFFF, 0, 3 + 2 * qty, unit, fc, 2 * qty) + b"\xee" * (2 * qty))
    conn.sendall(struct.pack(">HHHBBB", tid, 0, 3 + 2 * qty, unit, fc, 2 * qty)
                 + struct.pack(">%dH" % qty, *range(addr, addr + qty)))


def swallow(conn):
    """Read requests, never answer, until the client goes away."""
    while conn.recv(256):
        pass


def test_timeout_then_reconnect_on_next_request():
    dev = FakeDevice([lambda c: (answer(c), swallow(c)), lambda c: [answer(c) for _ in range(2)]])
    try:
        res = run_client("""
async def main():
    c = ModbusTcpClient('127.0.0.1', PORT, unit=1, timeout_ms=300)
    out['first'] = regs(await c.read_input(0, 2))
    t0 = time.ticks_ms()
    await attempt('silent', c.read_input(5, 2))
    out['waited_ms'] = time.ticks_diff(time.ticks_ms(), t0)
    out['connected_after_timeout'] = c.connected
    out['again'] = regs(await c.read_input(3, 2))
    out['again2'] = regs(await c.read_holding(7, 1))
    out['stats'] = c.stats()
asyncio.run(main())
""", dev.port)
    finally:
        dev.close()
    assert res["first"] == [0, 1]
    assert res["silent"] == ["ModbusTimeout"]
    assert 250 <= res["waited_ms"] < 5000
    assert res["connected_after_timeout"] is False
    assert res["again"] == [3, 4] and res["again2"] == [7]
    st = res["stats"]
    assert st["timeouts"] == 1 and st["ok"] == 3 and st["connects"] == 2
    assert st["last_error"] == "timeout" and st["last_error_ms"] is not None


def test_connection_refused_is_a_transport_error():
    port = firmware_proc.free_port()
    res = run_client("""
async def main():
    c = ModbusTcpClient('127.0.0.1', PORT, timeout_ms=1000)
    await attempt('r', c.read_holding(0, 1))
    out['stats'] = c.stats()
asyncio.run(main())
""", port)
    assert res["r"] == ["ModbusTransportError"]
    assert res["stats"]["errors"] == 1 and res["stats"]["last_error"].startswith("connection")


def test_stale_reply_with_old_transaction_id_is_skipped():
    """The device answers each request first with a late reply carrying the previous transaction id, then
    with the right one; the client must return the right one."""
    dev = FakeDevice([lambda c: [answer(c, stale=True) for _ in range(2)]])
    try:
        res = run_client("""
async def main():
    c = ModbusTcpClient('127.0.0.1', PORT, unit=3, timeout_ms=2000)
    out['a'] = regs(await c.read_holding(100, 2))
    out['b'] = regs(await c.read_holding(200, 3))
    out['stats'] = c.stats()
asyncio.run(main())
""", dev.port)
    finally:
        dev.close()
    assert res["a"] == [100, 101]
    assert res["b"] == [200, 201, 202]
    assert res["stats"]["ok"] == 2


def test_concurrent_tasks_share_one_client(pm_server):
    res = run_client("""
async def one(c, a):
    return regs(await c.read_holding(a, 3))
async def main():
    c = ModbusTcpClient('127.0.0.1', PORT, unit=1, timeout_ms=2000)
    out['r'] = await asyncio.gather(*[one(c, a) for a in (10, 50, 90, 130)])
    out['connects'] = c.stats()['connects']
asyncio.run(main())
""", pm_server.port)
    assert res["r"] == [[a, a + 1, a + 2] for a in (10, 50, 90, 130)]
    assert res["connects"] == 1
