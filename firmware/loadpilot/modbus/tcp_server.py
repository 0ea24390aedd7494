# Modbus TCP server (MBAP framing over asyncio), routing each request by unit ID through a pdu.Router.
#
# Decisions:
# - At most max_clients connections (default 4). One more is accepted; if no slot frees within 50 ms (a
#   client that just hung up frees its slot at its next poll) it is closed, so its client sees a clean close
#   instead of a hanging connect.
# - Protocol id != 0, or an MBAP length field < 2 or > 254, means the byte stream is not Modbus or has lost
#   its framing; there is no way to resynchronise a TCP stream, so the connection is dropped.
#   A length that is in range but does not match the PDU is answered like any malformed PDU (exception 03).
# - A unit ID with no handler in the router is answered with exception 0x0B (gateway target device failed
#   to respond), as a gateway does for a device it does not know; clients fail fast instead of timing out.
# - A client that sends nothing for idle_timeout_ms (default 60 s) is disconnected, freeing its slot.
#
# Why the sockets are polled instead of awaited through asyncio's IO queue: every IO wait there allocates
# an entry list and a poll registration (about 96 bytes per request on the unix port, measured), and
# serving a read must allocate nothing in steady state. So each connection task tries a non-blocking
# readinto and, when there is nothing, sleeps poll_ms (asyncio.sleep_ms reuses one generator, allocation
# free). Right after a request it polls every 1 ms for a short while, so pipelined and back-to-back
# requests are answered quickly; an idle connection costs one wake-up per poll_ms.
import asyncio
import time
from micropython import const

from loadpilot.modbus import pdu

_MBAP = const(7)
_MAX_FRAME = const(260)  # MBAP header (7) + largest PDU (253)
_RX_SIZE = const(520)  # room for one partial frame plus one whole one
_BUSY_WINDOW_MS = const(20)
_WRITE_TIMEOUT_MS = const(5000)
_SLOT_WAIT_MS = const(50)

_CLOSED = const(0)
_IDLE = const(1)
_PROTOCOL = const(2)


class _Slot:
    """Per-connection buffers, allocated once with the server and reused by each connection in the slot."""

    def __init__(self):
        self.rx = bytearray(_RX_SIZE)
        self.rx_pdu = memoryview(self.rx)[_MBAP:]
        self.tx = bytearray(_MAX_FRAME)
        self.tx_pdu = memoryview(self.tx)[_MBAP:]
        self.busy = False
        self.peer = None


class ModbusTcpServer:
    def __init__(self, router, host="0.0.0.0", port=502, max_clients=4, idle_timeout_ms=60000, poll_ms=10,
                 log=None):
        self.router = router
        self.host = host
        self.port = port
        self.idle_timeout_ms = idle_timeout_ms
        self.poll_ms = poll_ms
        self.log = log
        self._slots = [_Slot() for _ in range(max_clients)]
        self._stage = bytearray(_RX_SIZE)  # shared: filled and emptied with no await in between
        self._server = None
        self._closing = False
        # counters for the status view
        self.accepted = 0
        self.rejected = 0
        self.requests = 0
        self.exceptions = 0
        self.dropped = 0
        self.idle_closed = 0

    @property
    def max_clients(self):
        return len(self._slots)

    def clients(self):
        n = 0
        for s in self._slots:
            if s.busy:
                n += 1
        return n

    def stats(self):
        return {"clients": self.clients(), "max_clients": self.max_clients, "accepted": self.accepted,
                "rejected": self.rejected, "requests": self.requests, "exceptions": self.exceptions,
                "dropped": self.dropped, "idle_closed": self.idle_closed}

    async def start(self):
        self._closing = False
        self._server = await asyncio.start_server(self._on_client, self.host, self.port, 8)
        return self

    def close(self):
        self._closing = True
        if self._server:
            self._server.close()
            self._server = None

    async def wait_closed(self):
        if self._server:
            await self._server.wait_closed()

    async def run(self):
        """Start and serve until cancelled (for a supervisor that expects a long-running task)."""
        await self.start()
        try:
            while True:
                await asyncio.sleep_ms(60000)
        finally:
            self.close()

    def _log(self, level, msg):
        if self.log:
            getattr(self.log, level)("mbtcp", msg)

    def _free_slot(self):
        for s in self._slots:
            if not s.busy:
                return s
        return None

    async def _on_client(self, reader, writer):
        slot = self._free_slot()
        waited = 0
        # A client that just hung up frees its slot at its next poll (<= poll_ms); one that reconnects at once
        # (pymodbus, pysunspec2) would otherwise find every slot taken. Wait that long before refusing.
        while slot is None and waited < _SLOT_WAIT_MS:
            await asyncio.sleep_ms(5)
            waited += 5
            slot = self._free_slot()
        if slot is None:
            self.rejected += 1
            await _close(writer)
            return
        slot.busy = True
        self.accepted += 1
        try:
            why = await self._serve(slot, reader.s)
            if why == _IDLE:
                self.idle_closed += 1
            elif why == _PROTOCOL:
                self.dropped += 1
                self._log("warn", "dropped a client sending non-Modbus framing")
        except OSError:  # reset by peer and the like: just a closed connection
            pass
        finally:
            slot.busy = False
            await _close(writer)

    async def _serve(self, slot, sock):
        rx = slot.rx
        stage = self._stage
        filled = 0
        last_ms = time.ticks_ms()
        while True:
            if filled == 0:
                n = sock.readinto(rx)
            else:
                # Split frame: read into the shared stage and append (no memoryview slice, no allocation).
                n = sock.readinto(stage, _RX_SIZE - filled)
                if n:
                    for i in range(n):
                        rx[filled + i] = stage[i]
            now = time.ticks_ms()
            if n is None:  # nothing to read yet
                quiet = time.ticks_diff(now, last_ms)
                if quiet >= self.idle_timeout_ms:
                    return _IDLE
                if self._closing:  # close() was called: end idle connections too
                    return _CLOSED
                await asyncio.sleep_ms(1 if quiet < _BUSY_WINDOW_MS else self.poll_ms)
                continue
            if n == 0:
                return _CLOSED
            if filled == 0:
                filled = n
            else:
                filled += n
            last_ms = now
            # Serve every complete frame; each one is moved to the front of rx before it is served.
            while filled >= _MBAP:
                length = (rx[4] << 8) | rx[5]
                if rx[2] or rx[3] or length < 2 or length > 254:
                    return _PROTOCOL
                total = 6 + length
                if filled < total:
                    break
                # Inline on purpose: awaiting a helper coroutine would allocate its generator per request.
                handler = self.router.get(rx[6])
                if handler is not None and getattr(handler, "is_async", False):
                    try:
                        n = await handler.handle(slot.rx_pdu, length - 1, slot.tx_pdu)
                    except Exception:
                        n = pdu.exception(slot.tx_pdu, rx[7], pdu.DEVICE_FAILURE)
                else:
                    n = self._answer(slot, handler, length - 1)
                if n > 0:
                    self._frame(slot, n)
                    off = 0
                    total_tx = _MBAP + n
                    start = time.ticks_ms()
                    while off < total_tx:
                        k = sock.write(slot.tx, off, total_tx - off)
                        if k:
                            off += k
                            continue
                        if time.ticks_diff(time.ticks_ms(), start) > _WRITE_TIMEOUT_MS:
                            return _CLOSED  # the peer stopped reading
                        await asyncio.sleep_ms(1)
                filled -= total
                for i in range(filled):  # pipelined requests: shift the rest to the front
                    rx[i] = rx[total + i]

    def _answer(self, slot, handler, pdu_len):
        if handler is None:
            return pdu.exception(slot.tx_pdu, slot.rx[_MBAP], pdu.GATEWAY_NO_TARGET)
        return pdu.serve(handler, slot.rx_pdu, pdu_len, slot.tx_pdu)

    def _frame(self, slot, n):
        rx = slot.rx
        tx = slot.tx
        self.requests += 1
        if tx[_MBAP] & 0x80:
            self.exceptions += 1
        tx[0] = rx[0]  # transaction id echoed
        tx[1] = rx[1]
        tx[2] = 0
        tx[3] = 0
        tx[4] = (n + 1) >> 8
        tx[5] = (n + 1) & 0xFF
        tx[6] = rx[6]


async def _close(stream):
    try:
        stream.close()
        await stream.wait_closed()
    except OSError:
        pass
