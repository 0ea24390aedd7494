"""Real peers for the OCPP client tests: a central system made of the `ocpp` library (ocpp.v16) served by
`websockets`, a TCP proxy that can blackhole or drop the link, a tiny DNS server, and a test PKI.

Everything runs on one asyncio loop in a background thread; the tests stay synchronous and call in with
Backend.run(coro)."""
import asyncio
import base64
import http
import json
import os
import socket
import struct
import subprocess
import threading
import time

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, RegistrationStatus
from websockets.asyncio.server import serve


class CentralSystemCP(ChargePoint):
    """One charge point's connection as the backend sees it; records every frame it gets."""

    def __init__(self, cp_id, connection, backend):
        super().__init__(cp_id, connection)
        self.backend = backend
        self.raw = []  # (monotonic time, frame text) of everything the charge point sent

    async def route_message(self, raw_msg):
        self.raw.append((time.monotonic(), raw_msg))
        self.backend.frames.append(raw_msg)
        return await super().route_message(raw_msg)

    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor, charge_point_model, **kw):
        self.backend.boots.append(dict(kw, vendor=charge_point_vendor, model=charge_point_model))
        return call_result.BootNotification(current_time=self.backend.now_text(),
                                            interval=self.backend.interval, status=self.backend.boot_status)

    @on(Action.heartbeat)
    def on_heartbeat(self):
        self.backend.heartbeats.append(time.monotonic())
        return call_result.Heartbeat(current_time=self.backend.now_text())

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id, **kw):
        self.backend.data_transfers.append(dict(kw, vendor_id=vendor_id))
        return call_result.DataTransfer(status="Accepted", data="pong")

    @on(Action.status_notification)
    def on_status(self, connector_id, error_code, status, **kw):
        self.backend.statuses.append((connector_id, status, error_code))
        if kw.get("info"):
            self.backend.status_infos.append(kw["info"])
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag, **kw):
        self.backend.authorizes.append(id_tag)
        return call_result.Authorize(id_tag_info={"status": "Invalid" if id_tag in self.backend.unknown_tags
                                                  else "Accepted"})

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id, id_tag, meter_start, timestamp, **kw):
        b = self.backend
        if b.fail_tx:
            b.fail_tx -= 1
            raise ValueError("the backend's database is down")  # the library answers CALLERROR
        b.next_txid += 1
        b.starts.append({"connector_id": connector_id, "id_tag": id_tag, "meter_start": meter_start,
                         "timestamp": timestamp, "transaction_id": b.next_txid})
        status = "Invalid" if id_tag in b.unknown_tags else "Accepted"
        return call_result.StartTransaction(transaction_id=b.next_txid, id_tag_info={"status": status})

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop, timestamp, transaction_id, **kw):
        self.backend.stops.append(dict(kw, meter_stop=meter_stop, timestamp=timestamp,
                                       transaction_id=transaction_id))
        return call_result.StopTransaction()


    @on(Action.meter_values)
    def on_meter_values(self, connector_id, meter_value, **kw):
        self.backend.meter_values.append(dict(kw, connector_id=connector_id, meter_value=meter_value))
        self.backend.meter_rx.append(time.time())
        return call_result.MeterValues()


class Backend:
    """A central system on 127.0.0.1:port (path /ocpp/<client id>). password: required Basic auth password or
    None; ssl_context: serve wss."""

    def __init__(self, password=None, ssl_context=None, interval=300, boot_status=RegistrationStatus.accepted):
        self.password = password
        self.ssl_context = ssl_context
        self.interval = interval
        self.boot_status = boot_status
        self.port = None
        self.cps = []
        self.boots = []
        self.heartbeats = []
        self.statuses = []
        self.data_transfers = []
        self.status_infos = []
        self.starts = []  # StartTransaction payloads with the transaction_id given
        self.stops = []
        self.meter_values = []  # MeterValues payloads (snake_case keys at the top, the library's)
        self.meter_rx = []  # the wall-clock time each of them arrived
        self.next_txid = 1000
        self.unknown_tags = set()  # idTags answered Invalid
        self.authorizes = []  # idTags of Authorize.req
        self.fail_tx = 0  # StartTransactions to answer with a CALLERROR
        self.frames = []
        self.auth_headers = []  # every Authorization header received
        self.refused = 0
        self.paths = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server = None
        self.time_offset_s = 0  # the backend's clock may differ from ours: the firmware follows it

    def now_text(self):
        t = time.gmtime(time.time() + self.time_offset_s)
        return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", t)

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, port=0):
        async def go():
            self._server = await serve(self._handler, "127.0.0.1", port, subprotocols=["ocpp1.6"],
                                       process_request=self._check, ssl=self.ssl_context, max_size=2 ** 20)
            return self._server.sockets[0].getsockname()[1]
        self.port = self.run(go())
        return self

    def _check(self, connection, request):
        h = request.headers.get("Authorization")
        self.auth_headers.append(h)
        self.paths.append(request.path)
        if self.password is None:
            return None
        want = "Basic " + base64.b64encode(("%s:%s" % (request.path.rsplit("/", 1)[-1], self.password))
                                           .encode()).decode()
        if h != want:
            self.refused += 1
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "wrong password\n")
        return None

    async def _handler(self, connection):
        cp = CentralSystemCP(connection.request.path.rsplit("/", 1)[-1], connection, self)
        self.cps.append(cp)
        try:
            await cp.start()
        except Exception:
            pass

    def cp(self):
        return self.cps[-1]

    def call(self, payload, timeout=10):
        """A CALL to the latest connection through the library (schemas validated both ways)."""
        async def go():
            return await self.cp().call(payload)
        return self.run(go(), timeout)

    def raw_call(self, text, uid, timeout=5.0):
        """Send a raw frame on the latest connection; -> (parsed answer with that uid or None, seconds)."""
        cp = self.cp()
        start = time.monotonic()
        n = len(cp.raw)
        self.run(cp._connection.send(text))
        deadline = start + timeout
        while time.monotonic() < deadline:
            for t, m in cp.raw[n:]:
                msg = json.loads(m)
                if msg[0] in (3, 4) and msg[1] == uid:
                    return msg, t - start
            time.sleep(0.02)
        return None, timeout

    def stop(self):
        async def go():
            for cp in self.cps:  # a blackholed connection would hold the close handshake for its timeout
                cp._connection.transport.abort()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            for t in asyncio.all_tasks():  # relays of the Proxy and handlers still waiting on dead sockets
                if t is not asyncio.current_task():
                    t.cancel()
        try:
            self.run(go(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


class Proxy:
    """A TCP relay between the firmware and the backend on the backend's loop. mode "pass" relays, "blackhole"
    keeps every socket open and forwards nothing (a backend that went silent), drop() closes everything."""

    def __init__(self, backend):
        self.backend = backend
        self.mode = "pass"
        self.conns = []
        self.accepted = 0

        async def go():
            srv = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
            return srv, srv.sockets[0].getsockname()[1]
        self._server, self.port = backend.run(go())

    async def _pipe(self, r, w):
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    break
                while self.mode == "blackhole":
                    await asyncio.sleep(0.05)
                w.write(data)
                await w.drain()
        except Exception:
            pass
        finally:
            try:
                w.close()
            except Exception:
                pass

    async def _on_client(self, r, w):
        self.accepted += 1
        if self.mode == "blackhole":  # accepts, then never answers
            self.conns.append((w, None))
            return
        try:
            br, bw = await asyncio.open_connection("127.0.0.1", self.backend.port)
        except OSError:
            w.close()
            return
        self.conns.append((w, bw))
        asyncio.ensure_future(self._pipe(r, bw))
        asyncio.ensure_future(self._pipe(br, w))

    def drop(self):
        async def go():
            for a, b in self.conns:
                for x in (a, b):
                    if x is not None:
                        x.transport.abort()
            self.conns = []
        self.backend.run(go())


class DnsServer:
    """Answers A queries for names in `names` ({name: ip}); silent=True answers nothing (a dead DNS server)."""

    def __init__(self, names, silent=False):
        self.names = names
        self.silent = silent
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop = False
        self._thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                msg, addr = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                break
            self.queries += 1
            if self.silent:
                continue
            qid = msg[:2]
            i = 12
            labels = []
            while msg[i]:
                labels.append(msg[i + 1:i + 1 + msg[i]].decode())
                i += msg[i] + 1
            question = msg[12:i + 5]
            name = ".".join(labels)
            ip = self.names.get(name)
            if ip is None:
                self.sock.sendto(qid + struct.pack(">HHHHH", 0x8183, 1, 0, 0, 0) + question, addr)
                continue
            # a CNAME first, then the A record, both with compressed names: the client must skip to the A
            answer = struct.pack(">HHHIH", 0xC00C, 5, 1, 60, 2) + b"\xc0\x0c"
            answer += struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(ip)
            self.sock.sendto(qid + struct.pack(">HHHHH", 0x8180, 1, 2, 0, 0) + question + answer, addr)

    def stop(self):
        self._stop = True
        self.sock.close()


def make_pki(dirname):
    """EC test PKI with the openssl CLI: a CA, a server cert for localhost signed by it, a client cert signed
    by it, and an unrelated CA. -> {name: path}."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=dirname)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=OCPP Test CA")
    run("req", "-x509", *ec, "-keyout", "other.key", "-out", "other-ca.pem", "-days", "2", "-subj", "/CN=Other CA")
    with open(os.path.join(dirname, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    for name, cn in (("server", "localhost"), ("client", "CP1")):
        run("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", name + ".pem", "-days", "2", "-extfile", "ext.cnf")
    return {k: os.path.join(dirname, k.replace("_", "-") + (".pem" if not k.endswith("key") else ""))
            for k in ("ca", "other_ca", "server", "client")} | {
        "server_key": os.path.join(dirname, "server.key"), "client_key": os.path.join(dirname, "client.key")}


class RawWsServer:
    """A WebSocket server written out by hand, to send what no library sends: it completes the upgrade, sends
    `frame` (raw bytes) and records the close code the client answers with (None if it only hung up)."""

    def __init__(self, frame):
        import hashlib
        self.frame = frame
        self.close_codes = []
        self.connections = 0
        self._hashlib = hashlib
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.connections += 1
            try:
                self._one(c)
            except OSError:
                pass
            finally:
                c.close()

    def _recv_exact(self, c, n):
        out = b""
        while len(out) < n:
            d = c.recv(n - len(out))
            if not d:
                raise OSError("closed")
            out += d
        return out

    def _one(self, c):
        c.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(1024)
            if not d:
                return
            head += d
        key = [ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
               if ln.lower().startswith(b"sec-websocket-key")][0]
        acc = base64.b64encode(self._hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: " + acc + b"\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n")
        c.sendall(self.frame)
        # the client's frames until its close frame (its BootNotification may come first)
        while True:
            b0, b1 = self._recv_exact(c, 2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(c, 2))[0]
            mask = self._recv_exact(c, 4) if b1 & 0x80 else b"\0\0\0\0"
            payload = bytes(x ^ mask[i & 3] for i, x in enumerate(self._recv_exact(c, n)))
            if b0 & 0x0F == 8:
                self.close_codes.append(struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None)
                return

    def stop(self):
        self._stop = True
        self.sock.close()
