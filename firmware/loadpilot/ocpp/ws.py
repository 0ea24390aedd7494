# A small RFC 6455 WebSocket client on asyncio streams, for OCPP-J (subprotocol "ocpp1.6").
#
# Buffers are allocated once per client: a receive buffer of max_message bytes that fragments are appended
# into and a 125-byte one for control frames; each sent frame is built in a buffer of its own and masked in
# place (mask_into). The opening handshake's HTTP side is in ocpp/dial.py (connect-time code). Every read and
# write the caller makes is bounded: the opening by timeout_ms, each write by io_timeout_ms; recv() itself
# waits for as long as the caller lets it (the OCPP session's supervision cancels it when the link goes quiet). A message over max_message is refused with close
# code 1009 (too big), a protocol error with 1002.
import asyncio
from micropython import const
from random import getrandbits

OP_CONT = const(0)
OP_TEXT = const(1)
OP_BINARY = const(2)
OP_CLOSE = const(8)
OP_PING = const(9)
OP_PONG = const(10)
CLOSE_NORMAL = const(1000)
CLOSE_GOING_AWAY = const(1001)
CLOSE_PROTOCOL = const(1002)
CLOSE_TOO_BIG = const(1009)
_TOO_BIG = const(0x3FFFFFFF)  # a length over 16 MB: more than any limit here
_HEAD_MAX = const(2048)  # the server's handshake answer; more is not a WebSocket server


class WsError(Exception):
    """Any WebSocket failure; the text says which: "... (close N)" when the connection ended (N our close
    code or the server's, 1006 when TCP just ended), "HTTP N instead of 101 ..." when the upgrade was refused
    (401: wrong password). One class: each exception class costs about 0.1 KB of heap."""


def _closed(code, why):
    return WsError("%s (close %d)" % (why, code))


def mask_into(buf, start, n, key_at):
    """XOR buf[start:start+n] in place with the 4-byte key at buf[key_at:]; allocates nothing. Plain bytecode
    on purpose: the frozen build is bytecode only (no -march), and tools/bench/ws_mask.py measures the cost
    against the byte-by-byte copy other MicroPython WebSocket clients make."""
    k0 = buf[key_at]
    k1 = buf[key_at + 1]
    k2 = buf[key_at + 2]
    k3 = buf[key_at + 3]
    i = start
    end = start + n
    end4 = start + (n & ~3)
    while i < end4:
        buf[i] ^= k0
        buf[i + 1] ^= k1
        buf[i + 2] ^= k2
        buf[i + 3] ^= k3
        i += 4
    j = key_at
    while i < end:
        buf[i] ^= buf[j]
        i += 1
        j += 1


def random_into(buf, at, n):
    # the masking key must be unpredictable to intermediaries (RFC 6455 5.3); 16 bits at a time stay small ints
    i = at
    end = at + n
    while i < end:
        r = getrandbits(16)
        buf[i] = r & 0xFF
        if i + 1 < end:
            buf[i + 1] = r >> 8
        i += 2


class WebSocket:
    def __init__(self, max_message=4096, io_timeout_ms=5000):
        self.max_message = max_message
        self.io_timeout_ms = io_timeout_ms
        self.rbuf = bytearray(max_message)  # the last message recv() returned is rbuf[:n]
        self._rmv = memoryview(self.rbuf)
        self._cbuf = bytearray(127)  # control frame payload (<= 125), and the frame header's length bytes
        self._cmv = memoryview(self._cbuf)
        self._stream = None
        self.closing = False
        self.pongs = 0
        self.rx_frames = 0  # bumped on every complete frame: the session's "link alive" evidence

    # ---- opening ------------------------------------------------------------------------------------------
    async def open(self, stream, request, timeout_ms=10000):
        """Send the HTTP upgrade request (ocpp/dial.py builds it and checks the answer) on an open stream (TCP
        or TLS) -> the server's answer up to the blank line (bytes); raises WsError or TimeoutError."""
        self._stream = stream
        self.closing = False
        await self._write(request)
        return await asyncio.wait_for_ms(self._read_head(), timeout_ms)

    async def _read_head(self):
        # one byte at a time: no byte of a first frame right after the answer is taken from recv()
        mv = self._rmv
        n = 0
        limit = min(_HEAD_MAX, self.max_message)
        while n < limit:
            await self._readn(mv[n:n + 1], 1)
            n += 1
            if n >= 4 and self.rbuf[n - 1] == 10 and self.rbuf[n - 2] == 13 and self.rbuf[n - 3] == 10 \
                    and self.rbuf[n - 4] == 13:
                return bytes(mv[:n])
        raise WsError("handshake answer over %d bytes" % limit)

    # ---- reading ------------------------------------------------------------------------------------------
    async def _readn(self, mv, n):
        st = self._stream
        got = 0
        while got < n:
            k = await st.readinto(mv[got:n])
            if k is None:
                continue
            if not k:
                raise _closed(1006, "connection closed by server")
            got += k

    async def _length(self, n):
        if n == 126:
            await self._readn(self._cmv, 2)
            return (self._cbuf[0] << 8) | self._cbuf[1]
        if n == 127:
            await self._readn(self._cmv, 8)
            c = self._cbuf
            if c[0] or c[1] or c[2] or c[3] or c[4]:
                return _TOO_BIG  # over every limit; a 32-bit port's small ints end at 2**30
            return (c[5] << 16) | (c[6] << 8) | c[7]
        return n

    async def recv(self):
        """The next data message: -> (opcode, n), the payload in rbuf[:n]. Answers pings, counts pongs, ends
        with WsError on a close frame (echoed), a protocol error (1002) or a message over max_message (1009)."""
        op = -1
        got = 0
        c = self._cbuf
        while True:
            await self._readn(self._cmv, 2)
            b0 = c[0]
            b1 = c[1]
            fin = b0 & 0x80
            code = b0 & 0x0F
            if b0 & 0x70 or b1 & 0x80:  # no extension was negotiated; a server never masks (RFC 6455 5.1)
                await self._fail(CLOSE_PROTOCOL, "reserved bits or a masked frame from the server")
            n = await self._length(b1 & 0x7F)
            if code >= OP_CLOSE:
                if not fin or n > 125 or code > OP_PONG:
                    await self._fail(CLOSE_PROTOCOL, "bad control frame")
                await self._readn(self._cmv, n)
                self.rx_frames += 1
                if code == OP_PING:
                    await self.send(self._cmv[:n], OP_PONG)
                elif code == OP_PONG:
                    self.pongs += 1
                else:
                    status = (c[0] << 8) | c[1] if n >= 2 else CLOSE_NORMAL
                    if not self.closing:
                        self.closing = True
                        await self._send_close(status if n >= 2 else CLOSE_NORMAL)
                    raise _closed(status, "closed by server")
                continue
            if code == OP_CONT:
                if op < 0:
                    await self._fail(CLOSE_PROTOCOL, "continuation without a first fragment")
            elif code > OP_BINARY:
                await self._fail(CLOSE_PROTOCOL, "unknown opcode %d" % code)
            elif op >= 0:
                await self._fail(CLOSE_PROTOCOL, "new message inside a fragmented one")
            else:
                op = code
            if got + n > self.max_message:
                await self._fail(CLOSE_TOO_BIG, "message over %d bytes" % self.max_message)
            await self._readn(self._rmv[got:got + n], n)
            got += n
            self.rx_frames += 1
            if fin:
                return op, got

    def message(self, n):
        """The last message as a memoryview of the receive buffer (json.loads takes it without a copy); valid
        until the next recv()."""
        return self._rmv[:n]

    async def _fail(self, code, why):
        try:
            await self.close(code)
        except Exception:
            pass
        raise _closed(code, why)

    # ---- writing ------------------------------------------------------------------------------------------
    async def send(self, data, op=OP_TEXT):
        """One unfragmented frame with data (bytes, bytearray, memoryview or an ASCII/UTF-8 str)."""
        # The frame is built in a buffer of its own, 8 bytes of room for the header and mask key, then the
        # payload (a str's UTF-8 bytes) copied in once and masked in place: as much as encoding a str allocates
        # anyway, and no send buffer is held between frames (1 KB less resident heap, docs/ocpp.md "Memory").
        # No lock: each frame is one stream write, which the stream sends or queues whole, in order.
        src = memoryview(data)  # a str's UTF-8 bytes too, without a copy
        n = len(src)
        if n > self.max_message:
            raise ValueError("message of %d bytes over the limit %d" % (n, self.max_message))
        b = bytearray(n + 8)
        mv = memoryview(b)
        mv[8:] = src
        if n < 126:
            k = 2  # the frame starts at 2: 2 header bytes, the key at 4..7
            b[3] = 0x80 | n
        else:  # max_message stays below 64 KB, so the 16-bit length always fits
            k = 0
            b[1] = 0x80 | 126
            b[2] = n >> 8
            b[3] = n & 0xFF
        b[k] = 0x80 | op
        random_into(b, 4, 4)
        mask_into(b, 8, n, 4)
        st = self._stream
        if st is None:
            raise _closed(1006, "not connected")
        st.write(mv[k:] if k else b)
        await self._drain(st)

    async def ping(self, payload=b""):
        await self.send(payload, OP_PING)

    async def _send_close(self, code):
        c = bytearray(2)
        c[0] = code >> 8
        c[1] = code & 0xFF
        await self.send(c, OP_CLOSE)

    async def close(self, code=CLOSE_NORMAL):
        """Send a close frame (once); the caller closes the socket (a server owes us its close frame only
        within the session's read deadline)."""
        if self._stream is None or self.closing:
            return
        self.closing = True
        await self._send_close(code)

    async def _write(self, buf):
        st = self._stream
        if st is None:
            raise _closed(1006, "not connected")
        st.write(buf)
        await self._drain(st)

    def _drain(self, st):
        # a plain function returning an awaitable: no coroutine object per frame when the socket took it all
        if not getattr(st, "out_buf", True):
            return asyncio.sleep_ms(0)
        return self._drain_slow(st)

    async def _drain_slow(self, st):
        try:
            await asyncio.wait_for_ms(st.drain(), self.io_timeout_ms)
        except asyncio.TimeoutError:
            raise _closed(1006, "write timed out after %d ms" % self.io_timeout_ms)

    def detach(self):
        self._stream = None
