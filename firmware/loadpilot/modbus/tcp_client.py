# Async Modbus TCP client for external wallboxes and meters.
#
# - One request at a time per client (a lock serialises tasks sharing it); each request has a timeout
#   that covers connecting too, so a dead device costs at most timeout_ms and never blocks the loop.
# - Responses are matched by transaction id (and unit); a late answer to an earlier, timed-out request is
#   skipped instead of being taken for the current one.
# - Any timeout or transport error closes the connection; the next request reconnects.
# - Give host as an IP address: MicroPython resolves names with a blocking getaddrinfo.
import asyncio
import struct
import time
from micropython import const

from loadpilot.modbus.errors import ModbusError, ModbusTimeout, ModbusTransportError  # noqa: F401 (re-exported)
from loadpilot.modbus.values import i16, i32, u16, u32  # noqa: F401 (re-exported for callers)

_MBAP = const(7)


class ModbusTcpClient:
    def __init__(self, host, port=502, unit=1, timeout_ms=1000):
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout_ms = timeout_ms
        self._tx = bytearray(260)
        self._tid = 0
        self._reader = None
        self._writer = None
        self._lock = asyncio.Lock()
        # stats
        self.ok = 0
        self.timeouts = 0
        self.exceptions = 0
        self.errors = 0
        self.connects = 0
        self.last_error = None
        self.last_error_ms = None

    @property
    def connected(self):
        return self._writer is not None

    def stats(self):
        return {"ok": self.ok, "timeouts": self.timeouts, "exceptions": self.exceptions, "errors": self.errors,
                "connects": self.connects, "connected": self.connected, "last_error": self.last_error,
                "last_error_ms": self.last_error_ms}

    # -- requests --

    async def read_holding(self, addr, count, unit=None):
        """Registers addr..addr+count-1 as big-endian bytes (a memoryview of count*2 bytes)."""
        return await self._read(3, addr, count, unit)

    async def read_input(self, addr, count, unit=None):
        return await self._read(4, addr, count, unit)

    async def write_single(self, addr, value, unit=None):
        async with self._lock:  # the request is built in the shared tx buffer: hold the lock from here
            struct.pack_into(">BHH", self._tx, _MBAP, 6, addr, value & 0xFFFF)
            await self._request(unit, 5, 6)

    async def write_multiple(self, addr, values, unit=None):
        """values: a list of register values, or bytes-like holding the registers big-endian."""
        if isinstance(values, (bytes, bytearray, memoryview)):
            count = len(values) // 2
            data = values
        else:
            count = len(values)
            data = None
        if count < 1 or count > 123:
            raise ValueError("1..123 registers")
        async with self._lock:
            tx = self._tx
            struct.pack_into(">BHHB", tx, _MBAP, 16, addr, count, count * 2)
            for i in range(count):
                j = _MBAP + 6 + 2 * i
                if data is None:
                    v = values[i] & 0xFFFF
                    tx[j] = v >> 8
                    tx[j + 1] = v & 0xFF
                else:
                    tx[j] = data[2 * i]
                    tx[j + 1] = data[2 * i + 1]
            await self._request(unit, 6 + count * 2, 16)

    async def _read(self, fc, addr, count, unit):
        if count < 1 or count > 125:
            raise ValueError("1..125 registers")
        async with self._lock:
            struct.pack_into(">BHH", self._tx, _MBAP, fc, addr, count)
            body = await self._request(unit, 5, fc)
        if len(body) != 2 + count * 2 or body[1] != count * 2:
            self._fail("short read reply")
            raise ModbusTransportError("reply has %d bytes for %d registers" % (len(body) - 2, count))
        return memoryview(body)[2:]

    async def _request(self, unit, pdu_len, fc):
        # Called with self._lock held and the request PDU already in self._tx.
        unit = self.unit if unit is None else unit
        self._tid = (self._tid + 1) & 0xFFFF
        try:
            body = await asyncio.wait_for_ms(self._exchange(unit, pdu_len, fc), self.timeout_ms)
        except asyncio.TimeoutError:
            self.timeouts += 1
            self._fail("timeout")
            self._drop()
            raise ModbusTimeout("no answer from %s:%d unit %d in %d ms"
                                % (self.host, self.port, unit, self.timeout_ms))
        except ModbusTransportError as e:
            self.errors += 1
            self._fail(str(e))
            self._drop()
            raise
        except (OSError, EOFError) as e:
            self.errors += 1
            self._fail("connection: %r" % (e,))
            self._drop()
            raise ModbusTransportError("%s:%d: %r" % (self.host, self.port, e))
        if body[0] == fc | 0x80:
            self.exceptions += 1
            code = body[1] if len(body) > 1 else 0
            self._fail("exception %d" % code)
            raise ModbusError(code, fc)
        self.ok += 1
        return body

    async def _exchange(self, unit, pdu_len, fc):
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self.connects += 1
        tx = self._tx
        tid = self._tid
        struct.pack_into(">HHHB", tx, 0, tid, 0, pdu_len + 1, unit)
        self._writer.write(memoryview(tx)[:_MBAP + pdu_len])
        await self._writer.drain()
        r = self._reader
        while True:
            head = await r.readexactly(_MBAP)
            if len(head) < _MBAP:
                raise ModbusTransportError("connection closed")
            length = (head[4] << 8) | head[5]
            if head[2] or head[3] or length < 2 or length > 254:
                raise ModbusTransportError("not a Modbus TCP reply")
            body = await r.readexactly(length - 1)
            if len(body) < length - 1:
                raise ModbusTransportError("connection closed")
            if ((head[0] << 8) | head[1]) != tid or head[6] != unit:
                continue  # late answer to an earlier request
            if body[0] & 0x7F != fc:
                raise ModbusTransportError("reply for function %d to function %d" % (body[0], fc))
            return body

    def _fail(self, why):
        self.last_error = why
        self.last_error_ms = time.ticks_ms()

    def _drop(self):
        w = self._writer
        self._reader = self._writer = None
        if w is not None:
            try:
                w.close()
                w.s.close()  # MicroPython's Stream.close() leaves the socket open; wait_closed() would close it
            except Exception:
                pass

    async def close(self):
        self._drop()
