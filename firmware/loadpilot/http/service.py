# The HTTP transport (docs/http.md): /cnf?cmd=... onto the one command layer (api/commands.py), and static
# files from flash. Imported only when http_port is set. Nothing here changes a setting by itself: a command
# added to the command layer is served here with no change.
#
# - Login (http/auth.py): every command needs it except those in PUBLIC, which is empty: even get_dev_info
#   carries settings (its params) and the last RFID or PIN entered at each wallbox. A command added to the
#   command layer later needs the login unless it is named here. The commands of USER_RIGHTS (get_user,
#   set_user, enter_rfid, override_device) run without credentials too, with a user's rights only: the
#   command layer checks the user ID/PIN in the request (docs/users.md); a wrong one waits like a wrong password.
# - Answers are compact JSON (the document's examples: "ok", [1,257,...], {"8000d":...}); a refused command is
#   HTTP 400 with {"error": ..., "query": ...} (the MQTT api_res form), a refused modbus request the bare string
#   the document shows. Every answer passes the one redaction (redact.py).
# - get_dev_info is streamed device by device (chunked), never built as one string.
# - Static files are the gzip files that tools/www.py builds into the filesystem's www/ directory; their ETag
#   is the gzip trailer (CRC-32 and size of the content), so nothing is hashed on the box. A client that does
#   not accept gzip gets them inflated on the way.
import asyncio
import binascii
import json
import os

from loadpilot.api.commands import USER_RIGHTS, CommandError, Denied, error_answer, parse_query
from loadpilot.http.auth import REALM, Login
from loadpilot.http.server import HttpServer
from loadpilot.redact import redact

PUBLIC = ()
_JSON = "application/json"
_SEP = (",", ":")
_CHUNK = 512
WINDOW_BITS = 10  # tools/www.py compresses with a 1 KB window, so inflating for a client costs 1 KB
_TYPES = ((".html", "text/html; charset=utf-8"), (".js", "text/javascript"), (".css", "text/css"),
          (".json", "application/json"), (".svg", "image/svg+xml"), (".ico", "image/x-icon"),
          (".png", "image/png"), (".txt", "text/plain; charset=utf-8"))
WARNING = 'Warning: 199 LoadPilot "the admin password is the factory default: set it with cmd=change_admin_pwd"\r\n'


class HttpService:
    def __init__(self, store, commands, site, log, evse=None, www="www", host="0.0.0.0", port=80, max_clients=2,
                 max_pending=1):
        self.store = store
        self.commands = commands
        self.log = log
        self.www = www
        self.login = Login(store)
        if commands.dev_info is None:  # MQTT made one already when it runs
            from loadpilot.api.dev_info import DevInfo
            commands.dev_info = DevInfo(store, site, commands, evse)
        self.server = HttpServer(self.handle, host, port, max_clients, max_pending, log)
        self.server.extra_headers = self._warning
        self._chunk = bytearray(_CHUNK)
        self._chunk_mv = memoryview(self._chunk)

    def _warning(self):
        return WARNING if self.login.is_factory() else None

    def view(self):
        v = self.server.stats()
        v["default_password"] = self.login.is_factory()
        return v

    async def run(self):
        await self.server.run()

    async def handle(self, req, resp, slot):
        if req.path == "/cnf":
            if req.method not in ("GET", "POST"):
                await resp.send(405, '{"error":"use GET or POST"}', headers="Allow: GET, POST\r\n")
                return
            await self._cnf(req, resp, slot)
        elif req.method in ("GET", "HEAD"):
            await self._static(req, resp)
        else:
            await resp.send(405, '{"error":"use GET"}', headers="Allow: GET, HEAD\r\n")

    # ---- /cnf

    async def _cnf(self, req, resp, slot):
        query = req.query
        try:
            args = parse_query(query)  # once: the login decides on the command execute() will run
        except ValueError:  # percent-encoding that decodes to no UTF-8 text
            await resp.send(400, '{"error":"query is not valid percent-encoded UTF-8"}')
            return
        cmd = args.get("cmd")
        login = False  # who asks, for the command layer: True the admin login, False a user's rights only
        if cmd not in PUBLIC:
            if (req.authorization or cmd in USER_RIGHTS) and self.login.waiting(req.peer):
                # a try while this address still waits for a wrong one's answer is not checked: a parallel
                # connection must not learn a password or PIN faster than the delay allows
                wait_s = (self.login.waiting(req.peer) + 999) // 1000
                await resp.send(429, '{"error":"too many wrong logins from this address: try again in %d s"}' % wait_s,
                                headers="Retry-After: %d\r\n" % wait_s)
                return
            if self.login.check(req.authorization):
                login = True
                self.login.succeeded(req.peer)  # only the admin login clears the count, never a user's ID
            elif req.authorization or cmd not in USER_RIGHTS:  # USER_RIGHTS: the user ID/PIN given decides
                if req.authorization:  # a wrong password (no credentials at all is a browser's first try)
                    delay = self.login.failed(req.peer)
                    self.server.hold(slot)  # waiting holds no one up: the slot may be taken meanwhile
                    await asyncio.sleep_ms(delay)
                    self.server.hold(slot, False)
                # the pages ask with X-Requested-With and show their own login form: no browser dialog
                await resp.send(401, '{"error":"login required"}', headers=None if req.xhr else REALM)
                return
        body = req.body if req.method == "POST" and req.body else None
        if cmd == "get_dev_info" and body is None and "&" not in query:
            await self._stream_dev_info(resp)
            return
        stream = None
        try:
            res = self.commands.run(args, body, login)
            status = 200
            if hasattr(res, "parts"):  # a stream (export_sessions' CSV): its length, then its chunks
                stream = res
                out = None
            else:
                out = json.dumps(res, separators=_SEP)
        except Denied as e:  # no rights: 403; a wrong user ID/PIN waits like a wrong password (a PIN is no easier)
            if e.guess:
                delay = self.login.failed(req.peer)
                self.server.hold(slot)
                await asyncio.sleep_ms(delay)
                self.server.hold(slot, False)
            status = 403
            out = json.dumps(error_answer(str(e), query), separators=_SEP)
        except CommandError as e:
            status = 400
            out = json.dumps(str(e)) if getattr(e, "bare", False) else json.dumps(error_answer(str(e), query), separators=_SEP)
        except Exception as e:  # a bug still answers, and says what failed
            self.log.error("http", "%s failed: %s: %s" % (cmd, type(e).__name__, e))
            status = 500
            out = json.dumps(error_answer("bad request: %s: %s" % (type(e).__name__, e), query), separators=_SEP)
        if self.log.level <= 10:  # diagnostic logging (set_diag_logging) only: nothing is built per request else
            self.log.debug("http", "cmd=%s: %d" % (cmd, status))
        if stream is not None:
            await resp.start(200, stream.content_type, stream.length())
            for part in stream.parts():
                await resp.write(part)
            return
        await resp.send(status, redact(out))

    async def _stream_dev_info(self, resp):
        await resp.start(200, _JSON)
        from loadpilot.api.dev_info_stream import DevInfoStream
        for part in DevInfoStream(self.commands.dev_info).chunks():  # redacted piece by piece
            await resp.write(part)

    # ---- static files

    async def _static(self, req, resp):
        path = "/index.html" if req.path == "/" else req.path
        ctype = _ctype(path)
        if ctype is None or ".." in path or "//" in path:
            await resp.send(404, '{"error":"not found"}')
            return
        name = self.www + path + ".gz"
        try:
            f = open(name, "rb")
        except OSError:
            await resp.send(404, '{"error":"not found"}')
            return
        try:
            size = os.stat(name)[6]
            f.seek(size - 8)
            etag = '"%s"' % binascii.hexlify(f.read(8)).decode()
            headers = "ETag: %s\r\nCache-Control: no-cache\r\n" % etag  # no-cache: revalidate, get a 304
            if req.if_none_match == etag:
                await resp.start(304, None, 0, headers)
                return
            f.seek(0)
            src = f
            if req.gzip_ok:
                await resp.start(200, ctype, size, headers + "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n")
            else:  # a client without gzip (curl without --compressed): inflated on the way, streamed
                import deflate
                src = deflate.DeflateIO(f, deflate.GZIP, WINDOW_BITS)
                await resp.start(200, ctype, None, headers + "Vary: Accept-Encoding\r\n")
            if req.method == "HEAD":
                return
            mv = self._chunk_mv
            while True:
                n = src.readinto(self._chunk)
                if not n:
                    break
                await resp.write(mv[:n])
        finally:
            f.close()


def _ctype(path):
    for ext, t in _TYPES:
        if path.endswith(ext):
            return t
    return None
