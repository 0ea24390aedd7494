# A compact asyncio MQTT 3.1.1 client that never blocks the loop (see docs/mqtt.md for why not umqtt.simple).
#
# One task, `run()`, owns the connection: connect (non-blocking socket, every step under a timeout), CONNACK,
# publish "online" retained to the status topic (the last will says "offline"), resubscribe, resend
# unacknowledged QoS 1 publishes with DUP, then read packets while a 100 ms housekeeping loop sends keep-alive
# pings and drops a connection whose broker stopped answering. On any failure it closes the socket and
# reconnects after an exponential backoff with jitter. Other tasks call publish()/subscribe() at any time.
import asyncio
import time
from micropython import const

from loadpilot import tcp
from loadpilot.mqtt import packet, url as url_mod

DISCONNECTED = "disconnected"
CONNECTING = "connecting"
CONNECTED = "connected"

_TICK_MS = const(100)
_STABLE_MS = const(60000)  # a connection that lived this long resets the backoff


class MqttError(Exception):
    pass


class AuthError(MqttError):
    """The broker refused our credentials (CONNACK 4 or 5): retrying fast will not help."""


class Message:
    # payload None: the message was larger than max_packet and was skipped; size says how large it was
    def __init__(self, topic, payload, qos, retain, dup, pid, size=None):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.pid = pid
        self.size = len(payload) if size is None else size

    def __repr__(self):
        return "<Message %s qos=%d pid=%d dup=%d %d bytes>" % (self.topic, self.qos, self.pid, self.dup,
                                                                 self.size)


class _Out:
    # an unacknowledged QoS 1 publish; body is bytes, or a factory returning an iterable of chunks
    __slots__ = ("topic", "body", "length", "retain", "sent", "at")

    def __init__(self, topic, body, length, retain):
        self.topic = topic
        self.body = body
        self.length = length
        self.retain = retain
        self.sent = False
        self.at = 0


def pem_to_der(data):
    """The first certificate of a PEM file as DER (MicroPython's SSLContext takes DER cadata)."""
    import binascii
    if isinstance(data, str):
        data = data.encode()
    start = data.find(b"-----BEGIN CERTIFICATE-----")
    if start < 0:
        return bytes(data)  # already DER
    end = data.find(b"-----END CERTIFICATE-----", start)
    if end < 0:
        raise ValueError("truncated PEM certificate")
    body = data[start + 27:end]
    return binascii.a2b_base64(b"".join(body.split()))


class Client:
    def __init__(self, broker, client_id=None, status_topic=None, keepalive_s=30, max_packet=4096,
                 connect_timeout_ms=5000, io_timeout_ms=5000, ping_timeout_ms=None,
                 ack_timeout_ms=10000, backoff_min_ms=1000, backoff_max_ms=60000, max_inflight=16, cadata=None,
                 clean=True, log=None, on_message=None, default=None, dns_server=None):
        self.url = url_mod.parse(broker, default)
        self.version = self.url.version  # protocol level in use: 5 falls back to 4 once a broker refuses it
        self._retry_now = False
        if client_id is None:
            from random import getrandbits  # (every port we build has it: OCPP needs it too)
            client_id = "loadpilot-%08x" % getrandbits(30)
        self.client_id = client_id
        self.status_topic = status_topic
        self.keepalive_ms = keepalive_s * 1000
        self.ping_timeout_ms = ping_timeout_ms if ping_timeout_ms is not None else self.keepalive_ms
        self.max_packet = max_packet
        self.connect_timeout_ms = connect_timeout_ms
        self.io_timeout_ms = io_timeout_ms
        self.ack_timeout_ms = ack_timeout_ms
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.max_inflight = max_inflight
        self.cadata = pem_to_der(cadata) if cadata else None
        self.clean = clean
        self.log = log
        self.dns_server = dns_server  # () -> the board's DNS server (hal.dns_server): names resolve without blocking
        self.on_message = on_message  # fn(Message); for messages no subscription callback claimed
        self.state = DISCONNECTED
        self.last_error = None
        self.connects = 0
        self.dropped_oversize = 0
        self.dropped_qos0 = 0
        self._subs = []  # [topic, qos, callback]
        self._outbox = {}  # pid -> _Out, unacknowledged QoS 1 in send order
        self._order = []  # pids in the order they were published (resend keeps it)
        self._pid = 0
        self._sock = None
        self._stream = None
        self._reader_task = None
        self._reader_error = None
        self._addr = None
        self._wlock = asyncio.Lock()
        self._rbuf = bytearray(max_packet)
        self._rmv = memoryview(self._rbuf)
        self._ack = bytearray(4)
        self._last_tx = 0
        self._last_rx = 0
        self._ping_at = None
        self._pending_sub = {}  # pid -> sent_ms of SUBSCRIBEs awaiting SUBACK
        self._connected_ev = asyncio.Event()
        self._stop = False

    # ---- public API -------------------------------------------------------------------------------------
    def is_connected(self):
        return self.state == CONNECTED

    async def wait_connected(self, timeout_ms):
        """True once connected; False after timeout_ms."""
        if self.state == CONNECTED:
            return True
        try:
            await asyncio.wait_for_ms(self._connected_ev.wait(), timeout_ms)
            return True
        except asyncio.TimeoutError:
            return False

    def pending(self):
        """Number of QoS 1 publishes not yet acknowledged by the broker."""
        return len(self._outbox)

    def subscribe(self, topic, qos=0, callback=None):
        """Remember a subscription (kept across reconnects) and send it now if connected.
        callback(Message) gets matching messages; without one they go to on_message."""
        if qos not in (0, 1):
            raise ValueError("subscribe QoS must be 0 or 1")
        for s in self._subs:
            if s[0] == topic:
                s[1] = qos
                s[2] = callback
                break
        else:
            self._subs.append([topic, qos, callback])
        if self.state == CONNECTED:
            asyncio.create_task(self._send_subscribe([(topic, qos)]))

    async def publish(self, topic, payload, qos=0, retain=False):
        """QoS 0: sent now if connected, else dropped (returns False). QoS 1: queued until the broker
        acknowledges it, resent after a reconnect; returns False only if the in-flight window is full."""
        if isinstance(payload, str):
            payload = payload.encode()
        return await self._publish(topic, payload, len(payload), qos, retain)

    async def publish_parts(self, topic, length, parts, qos=0, retain=False):
        """Publish a payload of `length` bytes written chunk by chunk, so it never exists as one string.
        parts() returns an iterable of str/bytes chunks; it is called again if a QoS 1 resend is needed."""
        return await self._publish(topic, parts, length, qos, retain)

    async def disconnect(self):
        """Graceful stop: publish status "offline" (a clean DISCONNECT suppresses the will), then close."""
        self._stop = True
        if self.state == CONNECTED:
            try:
                if self.status_topic:
                    await self._send_publish(self.status_topic, b"offline", 7, 0, True, False, 0)
                await self._write(packet.DISCONNECT)
            except Exception:
                pass
        self._close()

    def view(self):
        return {"broker": self.url.redacted(), "state": self.state, "connects": self.connects,
                "mqtt": "5" if self.version == 5 else "3.1.1",
                "pending": len(self._outbox), "last_error": self.last_error,
                "dropped_oversize": self.dropped_oversize}

    # ---- the connection task ----------------------------------------------------------------------------
    async def run(self):
        failures = 0
        self._stop = False
        while not self._stop:
            up = None
            try:
                await self._connect()
                up = time.ticks_ms()
                await self._session()
            except asyncio.CancelledError:
                self._close()
                raise
            except Exception as e:  # every connection failure ends here and is retried
                if up is not None and time.ticks_diff(time.ticks_ms(), up) >= _STABLE_MS:
                    failures = 0
                # refused credentials will not fix themselves: wait the longest delay
                failures = 16 if isinstance(e, AuthError) else failures + 1
                self._note_error(e)
            self._close()
            if self._stop:
                break
            if self._retry_now:  # MQTT 5 refused: try 3.1.1 at once
                self._retry_now = False
                continue
            # exponential backoff; the jitter spreads out many devices reconnecting to one broker
            delay = self.backoff_min_ms << min(failures, 16)
            if delay > self.backoff_max_ms:
                delay = self.backoff_max_ms
            from random import getrandbits
            delay = delay // 2 + (getrandbits(16) * (delay // 2)) // 65536
            await asyncio.sleep_ms(delay)

    def _note_error(self, e):
        msg = "%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__
        if msg != self.last_error and self.log:
            self.log.warn("mqtt", "%s: %s" % (self.url.redacted(), msg))
        self.last_error = msg
        if isinstance(e, OSError):
            self._addr = None  # resolve again next time: the name may point elsewhere now

    def _close(self):
        if self.state == CONNECTED and self.log:
            self.log.info("mqtt", "%s: disconnected" % self.url.redacted())
        self.state = DISCONNECTED
        self._connected_ev.clear()
        r = self._reader_task
        self._reader_task = None
        if r is not None:
            try:
                r.cancel()  # first, so no task is left polling a closed socket
            except RuntimeError:  # _close called from inside the reader itself
                pass
        s = self._sock
        self._sock = None
        self._stream = None
        self._ping_at = None
        self._pending_sub = {}
        if s is not None:
            try:
                s.close()
            except Exception:
                pass

    async def _connect(self):
        self.state = CONNECTING
        u = self.url
        if self._addr is None:  # resolved once, again after a failed connect (loadpilot/dns.py: never blocking)
            from loadpilot import dns
            self._addr = await dns.resolve(u.host, u.port, self.dns_server() if self.dns_server else None)
        try:
            s = self._sock = await tcp.connect(self._addr[0], self._addr[1], self.connect_timeout_ms)
        except asyncio.TimeoutError:
            self._addr = None
            raise MqttError("TCP connect timed out after %d ms" % self.connect_timeout_ms)
        if u.tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if self.cadata:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cadata=self.cadata)
            else:
                ctx.verify_mode = ssl.CERT_NONE
            # the handshake runs inside the first non-blocking writes/reads of the stream below
            s = ctx.wrap_socket(s, server_hostname=u.host, do_handshake_on_connect=False)
            s.setblocking(False)
            self._sock = s
        self._stream = asyncio.StreamWriter(s)
        st = self.status_topic
        pkt = packet.connect(self.client_id, self.keepalive_ms // 1000, self.clean, u.user, u.password,
                             st, b"offline", 1 if st else 0, True, self.version, self.max_packet)
        try:
            await self._write(pkt)
            try:
                first, n = await asyncio.wait_for_ms(self._read_packet(), self.connect_timeout_ms)
            except (MqttError, OSError) as e:
                # older brokers hang up on an MQTT 5 CONNECT instead of answering
                self._fall_back(e)
                raise
        except ValueError as e:  # MicroPython's TLS layer reports certificate failures as ValueError
            raise MqttError("TLS: %s" % (str(e).strip() or "handshake failed"))
        except asyncio.TimeoutError:
            raise MqttError("no CONNACK within %d ms" % self.connect_timeout_ms)
        if first & 0xF0 != packet.CONNACK or n < 2:
            raise MqttError("expected CONNACK, got packet type 0x%02x" % first)
        code = self._rbuf[1]
        if code:
            text = packet.connack_error(code)
            if code in packet.VERSION_REFUSED:
                self._fall_back(text)
            if code in packet.AUTH_CODES:
                raise AuthError("broker refused the connection: %s" % text)
            raise MqttError("broker refused the connection: %s" % text)
        self.state = CONNECTED
        self.connects += 1
        self.last_error = None
        now = time.ticks_ms()
        self._last_rx = now
        self._last_tx = now
        if self.log:
            self.log.info("mqtt", "%s: connected" % u.redacted())
        if st:
            await self._send_publish(st, b"online", 6, 0, True, False, 0)
        if self._subs:
            await self._send_subscribe([(s[0], s[1]) for s in self._subs])
        for pid in list(self._order):
            o = self._outbox.get(pid)
            if o is not None:
                await self._send_publish(o.topic, o.body, o.length, 1, o.retain, o.sent, pid)
                o.sent = True
                o.at = time.ticks_ms()
        self._connected_ev.set()

    def _fall_back(self, why):
        if self.version == 5:
            self.version = 4
            self._retry_now = True
            if self.log:
                self.log.warn("mqtt", "%s: MQTT 5 refused (%s); using 3.1.1" % (self.url.redacted(), why))

    async def _session(self):
        reader = asyncio.create_task(self._reader())
        self._reader_task = reader
        try:
            while True:
                await asyncio.sleep_ms(_TICK_MS)
                if reader.done():
                    raise MqttError(self._reader_error or "connection closed")
                if self._stream is None:
                    raise MqttError(self.last_error or "connection dropped")
                now = time.ticks_ms()
                if self._order:
                    o = self._outbox.get(self._order[0])
                    if o is not None and o.sent and time.ticks_diff(now, o.at) >= self.ack_timeout_ms:
                        # MQTT 3.1.1 resends only on a new connection, so a missing PUBACK means reconnect
                        raise MqttError("no PUBACK within %d ms" % self.ack_timeout_ms)
                if self._ping_at is not None:
                    if time.ticks_diff(now, self._ping_at) >= self.ping_timeout_ms:
                        raise MqttError("no PINGRESP within %d ms: broker dead" % self.ping_timeout_ms)
                elif self.keepalive_ms and (
                        time.ticks_diff(now, self._last_tx) >= self.keepalive_ms * 3 // 4
                        or time.ticks_diff(now, self._last_rx) >= self.keepalive_ms * 3 // 4):
                    self._ping_at = now
                    await self._write(packet.PINGREQ)
                for pid in self._pending_sub:
                    if time.ticks_diff(now, self._pending_sub[pid]) >= self.io_timeout_ms:
                        raise MqttError("no SUBACK within %d ms" % self.io_timeout_ms)
        finally:
            reader.cancel()

    async def _reader(self):
        self._reader_error = None
        try:
            while True:
                first, n = await self._read_packet()
                self._last_rx = time.ticks_ms()
                self._ping_at = None  # any packet proves the broker alive
                t = first & 0xF0
                if t == packet.PUBLISH:
                    await self._on_publish(first, n)
                elif t == packet.DISCONNECT_TYPE:
                    raise MqttError("broker sent DISCONNECT")
                elif t == packet.PUBACK and n >= 2:
                    pid = (self._rbuf[0] << 8) | self._rbuf[1]
                    if self._outbox.pop(pid, None) is not None:
                        self._order.remove(pid)
                elif t == packet.SUBACK and n >= 3:
                    pid = (self._rbuf[0] << 8) | self._rbuf[1]
                    self._pending_sub.pop(pid, None)
                    end = min(n, self.max_packet)
                    i = packet.skip_properties(self._rmv[:end], 2) if self.version == 5 else 2
                    for i in range(i, end):
                        if self._rbuf[i] >= 0x80 and self.log:
                            self.log.warn("mqtt", "%s: broker refused a subscription" % self.url.redacted())
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._reader_error = "%s: %s" % (type(e).__name__, e)

    async def _on_publish(self, first, n):
        mv = self._rmv
        if n > self.max_packet:
            # oversize: the head is in the buffer, the rest was skipped; still acknowledge a QoS 1 so the
            # broker does not redeliver it forever
            self.dropped_oversize += 1
            try:
                topic, qos, retain, dup, pid, off = packet.parse_publish(first, mv[:self.max_packet], self.version)
            except ValueError:
                return
            if self.log:
                self.log.warn("mqtt", "dropped a %d-byte message on %s (limit %d)" % (n, topic, self.max_packet))
            # subscribers are told (payload None), so a request still gets its "too large" answer
            self._dispatch(Message(topic, None, qos, retain, dup, pid, n - off), False)
            if qos == 1:
                await self._write(packet.puback_into(self._ack, pid))
            return
        try:
            topic, qos, retain, dup, pid, off = packet.parse_publish(first, mv[:n], self.version)
        except ValueError:  # malformed (or non-UTF-8 topic): drop it, keep the connection
            return
        msg = Message(topic, bytes(mv[off:n]), qos, retain, dup, pid)
        self._dispatch(msg)
        if qos == 1:  # acknowledged after the handler saw it: a crash before this means redelivery
            await self._write(packet.puback_into(self._ack, pid))

    def _dispatch(self, msg, fallback=True):
        handled = False
        for s in self._subs:
            if s[2] is not None and packet.topic_matches(s[0], msg.topic):
                handled = True
                self._call(s[2], msg)
        if not handled and fallback and self.on_message is not None:
            self._call(self.on_message, msg)

    def _call(self, fn, msg):
        try:
            fn(msg)
        except Exception as e:  # a broken handler must not take the connection down
            if self.log:
                self.log.error("mqtt", "handler for %s raised %s: %s" % (msg.topic, type(e).__name__, e))

    # ---- low-level I/O ----------------------------------------------------------------------------------
    async def _readn(self, mv, n):
        st = self._stream
        got = 0
        while got < n:
            k = await st.readinto(mv[got:n])
            if k is None:
                continue
            if k == 0:
                raise MqttError("connection closed by broker")
            got += k

    async def _read_packet(self):
        """Read one packet into _rbuf; return (first byte, remaining length). A body over max_packet keeps
        its first max_packet bytes and the rest is read and discarded."""
        mv = self._rmv
        await self._readn(mv, 1)
        first = self._rbuf[0]
        n = 0
        shift = 0
        while True:
            await self._readn(mv, 1)
            b = self._rbuf[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MqttError("malformed remaining length")
        keep = n if n <= self.max_packet else self.max_packet
        if keep:
            await self._readn(mv, keep)
        rest = n - keep
        if rest:
            scratch = bytearray(256)
            smv = memoryview(scratch)
            while rest:
                k = rest if rest < 256 else 256
                await self._readn(smv, k)
                rest -= k
        return first, n

    async def _write(self, buf):
        async with self._wlock:
            await self._write_locked(buf)

    async def _write_locked(self, buf):
        st = self._stream
        if st is None:
            raise MqttError("not connected")
        st.write(buf)
        try:
            if getattr(st, "out_buf", True):
                await asyncio.wait_for_ms(st.drain(), self.io_timeout_ms)
            else:  # the socket took it all: yield as drain() would, without a timeout task (~1 KB per write)
                await asyncio.sleep_ms(0)
        except asyncio.TimeoutError:
            raise MqttError("write timed out after %d ms" % self.io_timeout_ms)
        self._last_tx = time.ticks_ms()

    def _next_pid(self):
        for _ in range(65535):
            self._pid = self._pid % 65535 + 1
            if self._pid not in self._outbox and self._pid not in self._pending_sub:
                return self._pid
        raise MqttError("no free packet id")

    async def _send_subscribe(self, topics):
        pid = self._next_pid()
        self._pending_sub[pid] = time.ticks_ms()
        try:
            await self._write(packet.subscribe(pid, topics, self.version))
        except Exception as e:
            self._note_error(e)

    async def _send_publish(self, topic, body, length, qos, retain, dup, pid):
        head = packet.publish_header(topic, length, qos, retain, dup, pid, self.version)
        async with self._wlock:
            if isinstance(body, (bytes, bytearray, memoryview)):
                await self._write_locked(head)
                await self._write_locked(body)
                return
            written = 0
            await self._write_locked(head)
            for chunk in body():
                if isinstance(chunk, str):
                    chunk = chunk.encode()
                written += len(chunk)
                if written > length:
                    break
                await self._write_locked(chunk)
            if written != length:
                # the packet length is already on the wire: the stream is corrupt, so drop the connection
                self._close()
                raise ValueError("publish_parts wrote %d bytes, declared %d" % (written, length))

    async def _publish(self, topic, body, length, qos, retain):
        if qos not in (0, 1):
            raise ValueError("publish QoS must be 0 or 1")
        if qos == 0:
            if self.state != CONNECTED:
                self.dropped_qos0 += 1
                return False
            try:
                await self._send_publish(topic, body, length, 0, retain, False, 0)
                return True
            except ValueError:
                raise
            except Exception as e:
                self._note_error(e)
                self._close()
                return False
        if len(self._outbox) >= self.max_inflight:
            return False
        pid = self._next_pid()
        o = _Out(topic, body, length, retain)
        self._outbox[pid] = o
        self._order.append(pid)
        if self.state == CONNECTED:
            try:
                await self._send_publish(topic, body, length, 1, retain, False, pid)
                o.sent = True
                o.at = time.ticks_ms()
            except ValueError:
                self._outbox.pop(pid, None)
                self._order.remove(pid)
                raise
            except Exception as e:  # stays queued; the next connection resends it
                o.sent = True
                o.at = time.ticks_ms()
                self._note_error(e)
                self._close()
        return True
