# A small HTTP/1.1 server on asyncio streams: keep-alive, a request-size limit, head and body deadlines, and a
# connection limit sized from the board's socket budget (config/schema.py socket_plan). Routing is the caller's:
# handler(req, resp) is awaited once per request.
#
# Admission (the ideas of modbus/tcp_server.py, for HTTP):
# - At most max_clients connections are served, each in a slot with a preallocated head buffer. A connection
#   beyond that evicts, in this order: the one idle longest between requests (keep-alive, or connected and
#   silent), else the oldest one still sending its request (slowloris), never one being answered. With nothing
#   to evict it waits up to 200 ms, then gets a 503. At most max_pending wait like that; more are closed.
# - A request head must be complete within head_timeout_ms of its first byte and fit max_head bytes (else
#   408 / 431), a body within body_timeout_ms and max_body bytes (else 408 / 413). A connection without a
#   request for idle_timeout_ms is closed. So a slow or idle client holds at most one slot for a bounded time,
#   and every wait is an await: nobody stalls the loop.
# - A client that stops reading its answer is dropped after write_timeout_ms.
import asyncio
import time
from micropython import const

_IDLE = const(0)   # between requests, or connected and silent: evicted first
_HEAD = const(1)   # sending a request (or waiting out a login delay): evicted next, oldest first
_BUSY = const(2)   # being answered: never evicted
_ADMIT_WAIT_MS = const(200)
_ADMIT_POLL_MS = const(5)
_LINGER_MS = const(1000)
_ONE_WRITE = const(1024)
_IPPROTO_TCP = const(6)  # Linux and lwIP alike; the socket modules do not name them
_TCP_NODELAY = const(1)

REASONS = ((200, "OK"), (304, "Not Modified"), (400, "Bad Request"), (401, "Unauthorized"), (403, "Forbidden"), (404, "Not Found"),
           (405, "Method Not Allowed"), (408, "Request Timeout"), (411, "Length Required"),
           (413, "Payload Too Large"), (414, "URI Too Long"), (429, "Too Many Requests"), (431, "Request Header Fields Too Large"),
           (500, "Internal Server Error"), (501, "Not Implemented"), (503, "Service Unavailable"))


def reason(status):
    for s, text in REASONS:
        if s == status:
            return text
    return "Error"


class HttpError(Exception):
    def __init__(self, status, text=""):
        super().__init__(text)
        self.status = status


class Request:
    """One parsed request. Header values are str; only the headers the firmware uses are kept."""

    def __init__(self):
        self.method = ""
        self.path = ""
        self.query = ""
        self.version11 = True
        self.keep_alive = True
        self.length = 0
        self.authorization = None
        self.if_none_match = None
        self.gzip_ok = False
        self.expect_continue = False
        self.xhr = False  # X-Requested-With: the pages' own requests (a 401 then asks for no browser dialog)
        self.body = None
        self.peer = None   # the client's address without its port (a login-delay key)


class Response:
    """The answer to one request, written through the connection's stream. Reused by the slot."""

    def __init__(self, server):
        self.server = server
        self.writer = None
        self.req = None
        self.started = False
        self.chunked = False
        self.close = False
        self.status = 0
        self._pending = None  # a small body send() puts behind the head

    def _reset(self, writer, req):
        self.writer = writer
        self.req = req
        self.started = False
        self.chunked = False
        self.close = not req.keep_alive
        self.status = 0

    async def start(self, status, ctype=None, length=None, headers=None):
        """The status line and headers. length None: the body is streamed (chunked on HTTP/1.1, else the
        connection closes after it). headers: extra header lines, each ending in CRLF, as one str."""
        self.started = True
        self.status = status
        if length is None:
            if self.req.version11:
                self.chunked = True
            else:
                self.close = True
        extra = self.server.extra_headers()
        head = "HTTP/1.1 %d %s\r\n%s%s%s%s%s" % (
            status, reason(status), "Content-Type: %s\r\n" % ctype if ctype else "",
            "Content-Length: %d\r\n" % length if length is not None else
            ("Transfer-Encoding: chunked\r\n" if self.chunked else ""),
            extra or "", headers or "", "Connection: close\r\n\r\n" if self.close else "\r\n")
        head = head.encode()
        if self._pending is not None:
            head += self._pending
            self._pending = None
        await self.write(head, raw=True)

    async def write(self, data, raw=False):
        if not data:
            return
        w = self.writer
        if self.chunked and not raw:
            w.write(b"%x\r\n" % len(data))
            w.write(data)
            w.write(b"\r\n")
        else:
            w.write(data)
        if w.out_buf:  # the socket took less than all of it: wait, but not for ever
            await asyncio.wait_for_ms(w.drain(), self.server.write_timeout_ms)

    async def end(self):
        if self.chunked:
            self.chunked = False
            await self.write(b"0\r\n\r\n")

    async def send(self, status, body=b"", ctype="application/json", headers=None):
        """A whole answer: status, headers, body (bytes or str). A small one leaves in one write: one segment."""
        if isinstance(body, str):
            body = body.encode()
        if len(body) > _ONE_WRITE:
            await self.start(status, ctype if body else None, len(body), headers)
            await self.write(body)
            return
        self._pending = body
        await self.start(status, ctype if body else None, len(body), headers)


class _Slot:
    def __init__(self, server, max_head):
        self.buf = bytearray(max_head)
        self.mv = memoryview(self.buf)
        self.req = Request()
        self.resp = Response(server)
        self.busy = False
        self.state = _IDLE
        self.since = 0
        self.task = None


class HttpServer:
    def __init__(self, handler, host="0.0.0.0", port=80, max_clients=2, max_pending=1, log=None,
                 max_head=1024, max_body=8192, head_timeout_ms=5000, body_timeout_ms=10000,
                 idle_timeout_ms=30000, write_timeout_ms=10000):
        if max_clients < 1 or max_pending < 1:
            raise ValueError("max_clients and max_pending must be at least 1")
        self.handler = handler
        self.host = host
        self.port = port
        self.log = log
        self.max_body = max_body
        self.head_timeout_ms = head_timeout_ms
        self.body_timeout_ms = body_timeout_ms
        self.idle_timeout_ms = idle_timeout_ms
        self.write_timeout_ms = write_timeout_ms
        self.max_pending = max_pending
        self.max_head = max_head
        self._slots = [_Slot(self, max_head) for _ in range(max_clients)]
        self._waiting = 0
        self._server = None
        self.extra_headers = lambda: None  # -> header lines every answer carries (the password warning)
        # counters for the status view
        self.accepted = 0
        self.rejected = 0
        self.requests = 0
        self.evicted = 0
        self.timed_out = 0
        self.too_large = 0

    def resize(self, max_clients, max_pending):
        """Before start(): the app sizes both from the board's socket budget (schema.socket_plan)."""
        self._slots = [_Slot(self, self.max_head) for _ in range(max_clients)]
        self.max_pending = max_pending

    def stats(self):
        return {"clients": sum(1 for s in self._slots if s.busy), "max_clients": len(self._slots),
                "max_pending": self.max_pending, "accepted": self.accepted, "rejected": self.rejected,
                "requests": self.requests, "evicted": self.evicted, "timed_out": self.timed_out,
                "too_large": self.too_large}

    async def start(self):
        self._server = await asyncio.start_server(self._on_client, self.host, self.port, 4)
        return self

    def close(self):
        if self._server:
            self._server.close()
            self._server = None

    async def run(self):
        await self.start()
        try:
            while True:
                await asyncio.sleep_ms(60000)
        finally:
            self.close()

    # ---- admission

    def _free(self):
        for s in self._slots:
            if not s.busy:
                return s
        return None

    def _victim(self):
        best = None
        for s in self._slots:
            if s.busy and s.state != _BUSY and s.task is not None:
                if best is None or s.state < best.state or (s.state == best.state and
                                                            time.ticks_diff(best.since, s.since) > 0):
                    best = s
        return best

    async def _admit(self):
        waited = 0
        while True:
            s = self._free()
            if s is not None:
                return s
            v = self._victim()
            if v is not None:
                self.evicted += 1
                v.task.cancel()
                v.task = None  # cancelled once; its finally frees the slot
            elif waited >= _ADMIT_WAIT_MS:
                return None
            await asyncio.sleep_ms(_ADMIT_POLL_MS if v is None else 0)
            waited += _ADMIT_POLL_MS

    async def _on_client(self, reader, writer):
        if self._waiting >= self.max_pending:
            self.rejected += 1
            await _close(writer)
            return
        self._waiting += 1
        try:
            slot = await self._admit()
        finally:
            self._waiting -= 1
        if slot is None:
            self.rejected += 1
            try:
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            await _close(writer)
            return
        slot.busy = True
        slot.state = _IDLE
        slot.since = time.ticks_ms()
        slot.task = asyncio.current_task()
        self.accepted += 1
        try:  # a streamed answer is many small writes: without this, each waits for the client's delayed ACK
            writer.s.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        try:
            await self._serve(slot, reader, writer)
        except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
            pass  # reset by the peer, stopped reading, or evicted: just a closed connection
        except Exception as e:  # a bug in a handler ends this connection, never the server
            if self.log:
                self.log.error("http", "request failed: %s: %s" % (type(e).__name__, e))
        finally:
            slot.busy = False
            slot.task = None
            slot.state = _IDLE
            await _close(writer)

    # ---- one connection

    async def _read(self, reader, mv, deadline_ms):
        left = time.ticks_diff(deadline_ms, time.ticks_ms())
        if left <= 0:
            raise asyncio.TimeoutError
        return await asyncio.wait_for_ms(reader.readinto(mv), left)

    async def _serve(self, slot, reader, writer):
        buf = slot.buf
        mv = slot.mv
        req = slot.req
        resp = slot.resp
        peer = _peer(writer)
        filled = 0  # bytes of the next request already in buf (pipelined)
        while True:
            slot.state = _IDLE
            slot.since = time.ticks_ms()
            if filled == 0:
                try:
                    filled = await asyncio.wait_for_ms(reader.readinto(mv), self.idle_timeout_ms)
                except asyncio.TimeoutError:
                    return
                if not filled:
                    return
            slot.state = _HEAD
            slot.since = time.ticks_ms()
            deadline = time.ticks_add(slot.since, self.head_timeout_ms)
            end = buf.find(b"\r\n\r\n", 0, filled)
            try:
                while end < 0:
                    if filled == len(buf):
                        raise HttpError(431, "request head over %d bytes" % len(buf))
                    n = await self._read(reader, mv[filled:], deadline)
                    if not n:
                        return
                    start = filled - 3 if filled > 3 else 0
                    filled += n
                    end = buf.find(b"\r\n\r\n", start, filled)
                _parse(req, buf, end)
                req.peer = peer
                rest = end + 4
                req.body = None
                if req.length:
                    if req.length > self.max_body:
                        raise HttpError(413, "body over %d bytes" % self.max_body)
                    if req.expect_continue:
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    body = bytearray(req.length)
                    have = filled - rest if filled - rest < req.length else req.length
                    body[:have] = mv[rest:rest + have]
                    rest += have
                    deadline = time.ticks_add(time.ticks_ms(), self.body_timeout_ms)
                    bmv = memoryview(body)
                    while have < req.length:
                        n = await self._read(reader, bmv[have:], deadline)
                        if not n:
                            return
                        have += n
                    req.body = body
            except HttpError as e:
                if e.status in (413, 431):
                    self.too_large += 1
                await self._refuse(resp, writer, req, e)
                await self._linger(reader, mv)
                return
            except asyncio.TimeoutError:
                self.timed_out += 1
                await self._refuse(resp, writer, req, HttpError(408, "request not complete in time"))
                return
            # what follows this request in the buffer is the start of the next one (pipelining)
            left = filled - rest
            if left > 0:
                buf[:left] = mv[rest:filled]
            filled = left if left > 0 else 0
            slot.state = _BUSY
            self.requests += 1
            resp._reset(writer, req)
            await self.handler(req, resp, slot)
            if not resp.started:
                await resp.send(500, b'{"error":"no answer"}')
            await resp.end()
            if resp.close:
                return

    async def _refuse(self, resp, writer, req, err):
        req.keep_alive = False
        req.version11 = True
        resp._reset(writer, req)
        await resp.send(err.status, '{"error":"%s"}' % err)

    async def _linger(self, reader, mv):
        """Read and drop what the client still sends, for a bounded time, before closing: closing with unread
        bytes makes the kernel reset the connection, and the client would lose the error answer."""
        deadline = time.ticks_add(time.ticks_ms(), _LINGER_MS)
        try:
            while await self._read(reader, mv, deadline):
                pass
        except (asyncio.TimeoutError, OSError):
            pass

    def hold(self, slot, held=True):
        """A handler waiting on a client's behalf (a login delay) lets the slot be evicted meanwhile; held=False
        when it answers again (an answer is never cut)."""
        slot.state = _HEAD if held else _BUSY
        slot.since = time.ticks_ms()


# the headers we read, by name length: a line whose name has another length is skipped without a copy
_NAME_LENGTHS = (6, 10, 13, 14, 15, 16, 17)


def _parse(req, buf, end):
    """The request line and the headers we use, read in place from buf[:end] (no copy of the head).
    Raises HttpError(400/501) for what we cannot serve."""
    mv = memoryview(buf)
    eol = buf.find(b"\r\n", 0, end)
    if eol < 0:
        eol = end
    try:
        line = str(mv[:eol], "utf-8")
    except ValueError:
        raise HttpError(400, "request line is not text")
    sp1 = line.find(" ")
    sp2 = line.rfind(" ")
    if sp1 <= 0 or sp2 <= sp1 or line[sp2 + 1:sp2 + 8] != "HTTP/1.":
        raise HttpError(400, "bad request line")
    req.method = line[:sp1]
    q = line.find("?", sp1, sp2)
    req.path = line[sp1 + 1:sp2 if q < 0 else q]
    req.query = "" if q < 0 else line[q + 1:sp2]
    req.version11 = line[sp2 + 8:] == "1"
    req.keep_alive = req.version11
    req.length = 0
    req.authorization = None
    req.if_none_match = None
    req.gzip_ok = False
    req.expect_continue = False
    req.xhr = False
    pos = eol + 2
    while pos < end:
        eol = buf.find(b"\r\n", pos, end)
        if eol < 0:
            eol = end
        c = buf.find(b":", pos, eol)
        if c <= pos:
            raise HttpError(400, "bad header line")
        if c - pos in _NAME_LENGTHS:
            _header(req, bytes(mv[pos:c]).lower(), mv, c + 1, eol)
        pos = eol + 2


def _header(req, name, mv, a, b):
    if name not in (b"content-length", b"authorization", b"connection", b"if-none-match", b"accept-encoding",
                    b"expect", b"transfer-encoding", b"x-requested-with"):
        return
    try:
        value = str(mv[a:b], "utf-8").strip()
    except ValueError:
        raise HttpError(400, "header is not text")
    if name == b"content-length":
        if not value.isdigit() or len(value) > 9:
            raise HttpError(400, "bad Content-Length")
        req.length = int(value)
    elif name == b"authorization":
        req.authorization = value
    elif name == b"connection":
        v = value.lower()
        if v == "close":
            req.keep_alive = False
        elif v == "keep-alive":
            req.keep_alive = True
    elif name == b"if-none-match":
        req.if_none_match = value
    elif name == b"accept-encoding":
        req.gzip_ok = "gzip" in value
    elif name == b"x-requested-with":
        req.xhr = True
    elif name == b"expect":
        req.expect_continue = value.lower() == "100-continue"
    else:
        raise HttpError(501, "chunked request bodies are not supported: send Content-Length")


def _peer(writer):
    """The client's address without its port: a tuple on the ESP32, a sockaddr (bytes) on the unix port."""
    try:
        addr = writer.get_extra_info("peername")
    except (KeyError, AttributeError):
        return None
    if isinstance(addr, tuple):
        return addr[0]
    if isinstance(addr, (bytes, bytearray)) and len(addr) >= 8:
        return bytes(addr[4:8])  # struct sockaddr_in: family, port, then the IPv4 address
    return addr


async def _close(stream):
    try:
        stream.close()
        await stream.wait_closed()
    except OSError:
        pass
