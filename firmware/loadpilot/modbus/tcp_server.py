# Modbus TCP server (MBAP framing over asyncio), routing each request by unit ID through a pdu.Router.
#
# Decisions:
# - Admission (issue 12: a master that connects is served within 1 s, whatever other sockets do):
#   - At most max_clients connections per port are served (default 4; a stock ESP32 has about 10 lwIP
#     sockets for every listener, client and server together, so the app passes max_clients and max_pending
#     sized from the board's budget). Each has a slot with preallocated buffers.
#   - A new connection holds no slot until it sends its first byte: it waits in asyncio's IO queue (no
#     polling). At most max_pending (default max_clients) wait; a newer one pushes the oldest out (closed),
#     and one silent for idle_timeout_ms is closed. So idle sockets and connect storms never take a slot.
#   - A connection that has sent a byte takes a free slot, else evicts, in this order:
#     1. the oldest connection that has not completed a request (bytes, but no whole frame: slowloris);
#     2. the connection idle longest since its last complete request (idleness never counts from the last
#        byte), so a master that keeps asking keeps its slot.
#     A connection inside a request (an async handler, a pending write) is never evicted. The evicted one is
#     closed at its next poll (<= poll_ms) and its slot handed over. With nothing to evict (every slot inside
#     a request) the newcomer waits up to 200 ms, then is closed: its client sees a clean close.
#   - A frame that has started must be complete within frame_timeout_ms (default 1 s), or the connection is
#     closed: a partial frame never holds a slot.
#   - A connection with no complete request for idle_timeout_ms (default 60 s) is closed.
# - Protocol id != 0, or an MBAP length field < 2 or > 254, means the byte stream is not Modbus or has lost
#   its framing; there is no way to resynchronise a TCP stream, so the connection is dropped.
#   A length that is in range but does not match the PDU is answered like any malformed PDU (exception 03).
# - A unit ID with no handler in the router is answered with exception 0x0B (gateway target device failed
#   to respond), as a gateway does for a device it does not know; clients fail fast instead of timing out.
#
# Why the sockets are polled instead of awaited through asyncio's IO queue: every IO wait there allocates
# an entry list and a poll registration (about 96 bytes per request on the unix port, measured), and
# serving a read must allocate nothing in steady state. So each connection task tries a non-blocking
# readinto and, when there is nothing, sleeps poll_ms (asyncio.sleep_ms reuses one generator, allocation
# free). Right after a request it polls every 1 ms for a short while, so pipelined and back-to-back
# requests are answered quickly; an idle connection costs one wake-up per poll_ms.
# The wait for a new connection's first byte is the one IO-queue wait: once per connection, not per request.
import asyncio
import time
from micropython import const

from loadpilot.modbus import pdu

_MBAP = const(7)
_MAX_FRAME = const(260)  # MBAP header (7) + largest PDU (253)
_RX_SIZE = const(260)  # one whole frame: a pipelined rest waits in the socket until the frame before is served
_BUSY_WINDOW_MS = const(20)
_WRITE_TIMEOUT_MS = const(5000)
_ADMIT_WAIT_MS = const(200)  # a connection with a request but no slot to take by then is closed
_ADMIT_POLL_MS = const(2)

_CLOSED = const(0)
_IDLE = const(1)
_PROTOCOL = const(2)
_EVICTED = const(3)
_SLOW = const(4)



class _Slot:
    """Per-connection buffers, allocated when the slot's first connection is admitted and then reused by each
    connection in the slot: a port no master connects to, or a slot the budget allows but no second master
    takes, costs no buffers (about 0.6 KB per slot on a 32-bit build)."""

    def __init__(self):
        self.rx = None
        self.busy = False  # a connection owns the slot
        self.reserved = False  # handed over to a waiting new connection once its owner has left
        self.evict = False  # the owner must close at its next poll
        self.in_request = False  # serving a request: never evicted mid-answer
        self.last_ms = 0  # admission, then the end of each complete request: what idleness counts from
        self.served = False  # this connection has completed a request

    def buffers(self):
        if self.rx is None:
            self.rx = bytearray(_RX_SIZE)
            self.rx_pdu = memoryview(self.rx)[_MBAP:]
            self.tx = bytearray(_MAX_FRAME)
            self.tx_pdu = memoryview(self.tx)[_MBAP:]


class ModbusTcpServer:
    def __init__(self, router, host="0.0.0.0", port=502, max_clients=4, idle_timeout_ms=60000, poll_ms=10,
                 log=None, frame_timeout_ms=1000, max_pending=None):
        self.router = router
        self.host = host
        self.port = port
        self.idle_timeout_ms = idle_timeout_ms
        self.frame_timeout_ms = frame_timeout_ms
        self.poll_ms = poll_ms
        self.log = log
        # the app sizes both from the board's socket budget (config/schema.py socket_plan): this server holds at
        # most 1 + max_clients + max_pending sockets, and briefly one more per connection being admitted
        if max_clients < 1 or (max_pending is not None and max_pending < 1):
            raise ValueError("max_clients and max_pending must be at least 1")
        self._slots = [_Slot() for _ in range(max_clients)]
        self.max_pending = max_pending or max_clients
        self._pending = []  # tasks of new connections waiting for their first byte, oldest first
        self._server = None
        self._closing = False
        # counters for the status view
        self.accepted = 0
        self.rejected = 0
        self.requests = 0
        self.exceptions = 0
        self.dropped = 0
        self.idle_closed = 0
        self.evicted = 0
        self.slow_closed = 0

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
        return {"clients": self.clients(), "pending": len(self._pending), "max_clients": self.max_clients,
                "accepted": self.accepted, "rejected": self.rejected, "requests": self.requests,
                "exceptions": self.exceptions, "dropped": self.dropped, "idle_closed": self.idle_closed,
                "evicted": self.evicted, "slow_closed": self.slow_closed}

    async def start(self):
        self._closing = False
        self._server = await asyncio.start_server(self._on_client, self.host, self.port, 8)
        return self

    def close(self):
        self._closing = True
        while self._pending:  # connections that never sent a byte hold no slot: end their wait
            self._pending.pop().cancel()
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
            if not s.busy and not s.reserved:
                return s
        return None

    def _victim(self):
        """The connection a newcomer with a request may evict, or None: the oldest one that has not completed a
        request yet (it sent bytes, but no whole frame), else the one idle longest since its last complete
        request; never one inside a request or already being handed over."""
        now = time.ticks_ms()
        best = None
        best_served = True
        best_idle = -1
        for s in self._slots:
            if s.busy and not s.reserved and not s.in_request:
                idle = time.ticks_diff(now, s.last_ms)
                if best is None or (best_served and not s.served) or (s.served == best_served and idle > best_idle):
                    best = s
                    best_served = s.served
                    best_idle = idle
        return best

    async def _first_byte(self, reader):
        """Wait, holding no slot, for the new connection's first byte: -1 if it closes, stays silent for
        idle_timeout_ms, or is pushed out of the max_pending waiting connections by a newer one."""
        me = asyncio.current_task()
        pending = self._pending
        if len(pending) >= self.max_pending:
            pending.pop(0).cancel()  # the oldest silent connection makes room
        pending.append(me)
        try:
            b = await asyncio.wait_for_ms(reader.read(1), self.idle_timeout_ms)
            return b[0] if b else -1
        except (asyncio.CancelledError, asyncio.TimeoutError, OSError):
            return -1
        finally:
            if me in pending:
                pending.remove(me)

    async def _admit(self):
        """A slot for a connection that has started a request: a free one, else an evicted one's, else None
        after _ADMIT_WAIT_MS (every slot inside a request)."""
        waited = 0
        while True:
            slot = self._free_slot()
            if slot is not None:
                return slot
            slot = self._victim()
            if slot is not None:
                slot.reserved = True
                slot.evict = True
                break
            if waited >= _ADMIT_WAIT_MS or self._closing:
                return None
            await asyncio.sleep_ms(_ADMIT_POLL_MS)
            waited += _ADMIT_POLL_MS
        # the evicted owner leaves at its next poll; bounded anyway, an owner can enter a request meanwhile
        while slot.busy and waited < _ADMIT_WAIT_MS + self.poll_ms * 4:
            await asyncio.sleep_ms(_ADMIT_POLL_MS)
            waited += _ADMIT_POLL_MS
        slot.reserved = False
        if slot.busy:
            slot.evict = False
            return None
        return slot

    async def _on_client(self, reader, writer):
        first = await self._first_byte(reader)
        slot = await self._admit() if first >= 0 else None
        if slot is None:
            self.rejected += 1
            await _close(writer)
            return
        slot.busy = True
        slot.evict = False
        self.accepted += 1
        try:
            why = await self._serve(slot, reader.s, first)
            if why == _IDLE:
                self.idle_closed += 1
            elif why == _EVICTED:
                self.evicted += 1
            elif why == _SLOW:
                self.slow_closed += 1
            elif why == _PROTOCOL:
                self.dropped += 1
                self._log("warn", "dropped a client sending non-Modbus framing")
        except OSError:  # reset by peer and the like: just a closed connection
            pass
        finally:
            slot.busy = False
            slot.evict = False
            slot.in_request = False
            await _close(writer)

    async def _serve(self, slot, sock, first=-1):
        slot.buffers()
        rx = slot.rx
        stage = slot.tx  # the split-frame stage: tx is free until the frame is whole (no buffer of its own)
        filled = 0
        rx_ms = frame_ms = slot.last_ms = time.ticks_ms()
        slot.served = False
        if first >= 0:  # the byte _first_byte waited for
            rx[0] = first
            filled = 1
        while True:
            if slot.evict:  # a new connection needs the slot and this one is the longest idle
                return _EVICTED
            if filled == 0:
                n = sock.readinto(rx)
            else:
                # Split frame: read into the stage and append (no memoryview slice, no allocation).
                n = sock.readinto(stage, _RX_SIZE - filled)
                if n:
                    for i in range(n):
                        rx[filled + i] = stage[i]
            now = time.ticks_ms()
            if n is None:  # nothing to read yet
                if time.ticks_diff(now, slot.last_ms) >= self.idle_timeout_ms:
                    return _IDLE
                if filled and time.ticks_diff(now, frame_ms) >= self.frame_timeout_ms:
                    return _SLOW
                if self._closing:  # close() was called: end idle connections too
                    return _CLOSED
                await asyncio.sleep_ms(1 if time.ticks_diff(now, rx_ms) < _BUSY_WINDOW_MS else self.poll_ms)
                continue
            if n == 0:
                return _CLOSED
            if filled == 0:
                filled = n
                frame_ms = now
            else:
                filled += n
            rx_ms = now
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
                slot.in_request = True
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
                slot.in_request = False
                slot.served = True
                slot.last_ms = frame_ms = time.ticks_ms()  # a pipelined rest starts its deadline now
                filled -= total
                for i in range(filled):  # pipelined requests: shift the rest to the front
                    rx[i] = rx[total + i]
            if filled and time.ticks_diff(now, frame_ms) >= self.frame_timeout_ms:
                return _SLOW  # bytes keep trickling in but the frame is overdue

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
