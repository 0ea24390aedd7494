# Async Modbus RTU master for one RS485 bus. One request at a time per bus (an asyncio.Lock); while a request
# waits for its answer the caller awaits, so every other task keeps running and a silent slave costs only its
# own timeout. Statistics are kept per slave for the comm-state the manager and the web UI show.
import asyncio
import struct
import time

from loadpilot.modbus import rtu
from loadpilot.modbus.errors import BadResponse, CrcError, ModbusError, ModbusTimeout

_POLL_MS = 1


class SlaveStats:
    """Per-slave counters. timeouts and crc_errors count failed attempts (a retried request can add more
    than one); ok and exceptions count answered requests. last_error_ms is time.ticks_ms() of last_error."""

    def __init__(self):
        self.ok = 0
        self.timeouts = 0
        self.crc_errors = 0
        self.exceptions = 0
        self.bad_responses = 0
        self.last_error = None
        self.last_error_ms = None

    def error(self, what):
        self.last_error = what
        self.last_error_ms = time.ticks_ms()

    def as_dict(self):
        return {"ok": self.ok, "timeouts": self.timeouts, "crc_errors": self.crc_errors,
                "exceptions": self.exceptions, "bad_responses": self.bad_responses,
                "last_error": self.last_error, "last_error_ms": self.last_error_ms}


class RtuMaster:
    def __init__(self, uart, settings, timeout_ms=500, retries=0, min_silence_us=None, check_gaps=True,
                 broadcast_turnaround_ms=100):
        self.port = rtu.RtuPort(uart, settings.t35_us, settings.t15_us, check_gaps)
        self.timeout_ms = timeout_ms
        self.retries = retries
        # silence kept between the end of one exchange and the next request; never below t3.5
        self.min_silence_us = max(settings.t35_us, min_silence_us or 0)
        self.broadcast_turnaround_ms = broadcast_turnaround_ms
        self.lock = asyncio.Lock()
        self.stats = {}
        self._pdu = bytearray(rtu.MAX_FRAME - 3)

    def slave_stats(self, unit):
        s = self.stats.get(unit)
        if s is None:
            s = self.stats[unit] = SlaveStats()
        return s

    # -- the exchange ----------------------------------------------------------------------------------------
    async def transact(self, unit, pdu, pdu_len, out, timeout_ms=None, retries=None):
        """Send request PDU pdu[0:pdu_len] to unit; copy the answer PDU (function code first) into out and
        return its length. An exception answer is returned as it came (function code | 0x80, code) and
        counted; raise ModbusTimeout / CrcError / BadResponse (all ModbusTransportError) when no usable answer came after the retries.
        unit 0 is a broadcast: nothing is awaited and 0 is returned."""
        if not 0 < pdu_len <= rtu.MAX_FRAME - 3 or not 0 <= unit <= 247:
            raise ValueError("unit %d, PDU length %d" % (unit, pdu_len))
        async with self.lock:
            return await self._retrying(unit, pdu, pdu_len, out, timeout_ms, retries)

    async def _retrying(self, unit, pdu, pdu_len, out, timeout_ms=None, retries=None):
        # the caller holds the bus lock
        timeout_ms = self.timeout_ms if timeout_ms is None else timeout_ms
        retries = self.retries if retries is None else retries
        stats = self.slave_stats(unit) if unit else None
        attempt = 0
        while True:
            try:
                return await self._exchange(unit, pdu, pdu_len, out, timeout_ms, stats)
            except (ModbusTimeout, CrcError) as e:
                if attempt >= retries:
                    raise e
                attempt += 1

    async def _exchange(self, unit, pdu, pdu_len, out, timeout_ms, stats):
        port = self.port
        wait_us = port.silence_left_us(self.min_silence_us)
        if wait_us:
            await asyncio.sleep_ms((wait_us + 999) // 1000)
        port.discard_input()
        tx = port.tx
        tx[0] = unit
        for i in range(pdu_len):
            tx[1 + i] = pdu[i]
        n = port.seal(1 + pdu_len)
        await rtu.send(port, n)
        if unit == 0:
            await asyncio.sleep_ms(self.broadcast_turnaround_ms)
            port.line_free_us = time.ticks_us()
            return 0
        fc = pdu[0]
        crc_before = port.crc_errors + port.gap_errors + port.overlong + port.runts
        start = time.ticks_ms()
        rx = port.rx
        while True:
            want = rtu.response_len(rx, port.rx_len)
            got = port.complete_now(want) if want else 0
            if not got:
                got = port.poll()
            if got:
                if rx[0] != unit:
                    continue  # another node's frame: not our answer, keep waiting
                return self._accept(rx, got, fc, out, stats)
            if port.crc_errors + port.gap_errors + port.overlong + port.runts != crc_before:
                stats.crc_errors += 1
                stats.error("crc")
                raise CrcError("unit %d: bad CRC" % unit)
            if time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
                port.discard_input()
                stats.timeouts += 1
                stats.error("timeout")
                raise ModbusTimeout("unit %d: no answer in %d ms" % (unit, timeout_ms))
            await asyncio.sleep_ms(_POLL_MS)

    def _accept(self, rx, n, fc, out, stats):
        rfc = rx[1]
        if rfc == fc | 0x80 and n == 5:
            stats.exceptions += 1
            stats.error("exception %d" % rx[2])
        elif rfc != fc:
            stats.bad_responses += 1
            stats.error("bad response")
            raise BadResponse("function %d answered with %d" % (fc, rfc))
        else:
            stats.ok += 1
        m = n - 3
        if m > len(out):
            raise BadResponse("answer of %d bytes does not fit" % n)
        for i in range(m):
            out[i] = rx[1 + i]
        return m

    # -- the usual requests ------------------------------------------------------------------------------
    async def read_registers(self, unit, addr, count, fc=3, into=None, timeout_ms=None):
        """Read count holding (fc 3) or input (fc 4) registers; returns a list of ints (or fills into)."""
        if fc not in (3, 4) or not 1 <= count <= 125 or not 0 <= addr <= 0xFFFF or not 1 <= unit <= 247:
            raise ValueError("read fc=%d addr=%d count=%d" % (fc, addr, count))
        async with self.lock:  # the shared request buffer is only ours while we hold the bus
            struct.pack_into(">BHH", self._pdu, 0, fc, addr, count)
            out = bytearray(rtu.MAX_FRAME)
            n = await self._retrying(unit, self._pdu, 5, out, timeout_ms)
        if out[0] & 0x80:
            raise ModbusError(out[1], out[0] & 0x7F)
        if n != 2 + 2 * count or out[1] != 2 * count:
            self.slave_stats(unit).bad_responses += 1
            self.slave_stats(unit).error("bad response")
            raise BadResponse("unit %d: %d registers asked, %d bytes came" % (unit, count, out[1]))
        regs = into if into is not None else [0] * count
        for i in range(count):
            regs[i] = (out[2 + 2 * i] << 8) | out[3 + 2 * i]
        return regs

    async def read_holding(self, unit, addr, count, into=None, timeout_ms=None):
        return await self.read_registers(unit, addr, count, 3, into, timeout_ms)

    async def read_input(self, unit, addr, count, into=None, timeout_ms=None):
        return await self.read_registers(unit, addr, count, 4, into, timeout_ms)

    async def write_single(self, unit, addr, value, timeout_ms=None):
        if not 0 <= addr <= 0xFFFF or not 0 <= value <= 0xFFFF or not 0 <= unit <= 247:
            raise ValueError("write addr=%d value=%d" % (addr, value))
        async with self.lock:
            struct.pack_into(">BHH", self._pdu, 0, 6, addr, value)
            out = bytearray(8)
            n = await self._retrying(unit, self._pdu, 5, out, timeout_ms)
        self._check_echo(unit, out, n, 6, addr, value)

    async def write_multiple(self, unit, addr, values, timeout_ms=None):
        count = len(values)
        if not 1 <= count <= 123 or not 0 <= addr <= 0xFFFF or not 0 <= unit <= 247:
            raise ValueError("write addr=%d count=%d" % (addr, count))
        async with self.lock:
            pdu = self._pdu
            struct.pack_into(">BHHB", pdu, 0, 16, addr, count, 2 * count)
            for i in range(count):
                v = values[i]
                if not 0 <= v <= 0xFFFF:
                    raise ValueError("register value %r" % (v,))
                pdu[6 + 2 * i] = v >> 8
                pdu[7 + 2 * i] = v & 0xFF
            out = bytearray(8)
            n = await self._retrying(unit, self._pdu, 6 + 2 * count, out, timeout_ms)
        self._check_echo(unit, out, n, 16, addr, count)

    def _check_echo(self, unit, out, n, fc, addr, second):
        if unit == 0:
            return
        if out[0] & 0x80:
            raise ModbusError(out[1], out[0] & 0x7F)
        if n != 5 or struct.unpack_from(">HH", out, 1) != (addr, second):
            self.slave_stats(unit).bad_responses += 1
            self.slave_stats(unit).error("bad response")
            raise BadResponse("unit %d: write fc %d not echoed" % (unit, fc))


class RtuDevice:
    """One slave on an RTU bus, with the request methods and return shapes of tcp_client.ModbusTcpClient
    (reads give a memoryview of count*2 big-endian bytes, valid until this device's next request), so a
    device driver does not care which transport its device sits on."""

    def __init__(self, master, unit, timeout_ms=None):
        if not 1 <= unit <= 247:
            raise ValueError("RTU unit id %d: must be 1..247" % unit)
        self.master = master
        self.unit = unit
        self.timeout_ms = timeout_ms
        self._req = bytearray(rtu.MAX_FRAME - 3)
        self._out = bytearray(rtu.MAX_FRAME - 3)
        self._outmv = memoryview(self._out)

    def stats(self):
        return self.master.slave_stats(self.unit).as_dict()

    async def close(self):
        """Release the bus's UART (same shape as ModbusTcpClient.close): for a device layer being rebuilt."""
        uart = self.master.port.uart
        uart.set_de(0)  # a request cut off by the rebuild must not leave the transmitter driving the bus
        uart.close()

    async def _call(self, unit, req_len, fc):
        unit = self.unit if unit is None else unit
        n = await self.master.transact(unit, self._req, req_len, self._out, self.timeout_ms)
        if n and self._out[0] & 0x80:
            raise ModbusError(self._out[1], fc)
        return n

    async def _read(self, fc, addr, count, unit):
        if not 1 <= count <= 125:
            raise ValueError("1..125 registers")
        struct.pack_into(">BHH", self._req, 0, fc, addr, count)
        n = await self._call(unit, 5, fc)
        if n != 2 + 2 * count or self._out[1] != 2 * count:
            raise BadResponse("%d registers asked, %d bytes came" % (count, self._out[1]))
        return self._outmv[2:2 + 2 * count]

    async def read_holding(self, addr, count, unit=None):
        return await self._read(3, addr, count, unit)

    async def read_input(self, addr, count, unit=None):
        return await self._read(4, addr, count, unit)

    async def write_single(self, addr, value, unit=None):
        struct.pack_into(">BHH", self._req, 0, 6, addr, value & 0xFFFF)
        await self._call(unit, 5, 6)

    async def write_multiple(self, addr, values, unit=None):
        """values: a list of register values, or bytes-like holding the registers big-endian."""
        raw = isinstance(values, (bytes, bytearray, memoryview))
        count = len(values) // 2 if raw else len(values)
        if not 1 <= count <= 123:
            raise ValueError("1..123 registers")
        req = self._req
        struct.pack_into(">BHHB", req, 0, 16, addr, count, 2 * count)
        for i in range(count):
            if raw:
                req[6 + 2 * i] = values[2 * i]
                req[7 + 2 * i] = values[2 * i + 1]
            else:
                v = values[i] & 0xFFFF
                req[6 + 2 * i] = v >> 8
                req[7 + 2 * i] = v & 0xFF
        await self._call(unit, 6 + 2 * count, 16)
