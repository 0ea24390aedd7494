# The OCPP 1.6J client task: connection, supervision and the message flow around the pure core (core.py).
#
# run() keeps one connection: ocpp/dial.py resolves (dns.py, never blocking), connects TCP, TLS (tls.py) and
# the WebSocket upgrade with HTTP Basic auth, then a session: a reader task answers every incoming CALL at once from the core and
# matches answers to our one outstanding CALL; a 200 ms housekeeping loop sends the next CALL (BootNotification
# until accepted, triggered messages, StatusNotification on change, Heartbeat), pings and judges the link. A
# link with no frame for 2 x the heartbeat interval, or a ping unanswered for PONG_TIMEOUT_MS, is dead: close,
# reconnect after a backoff from 5 s to 5 min plus jitter, resolving the host again. Nothing here reboots.
import asyncio
import os
import sys
import time
from micropython import const

from loadpilot.ocpp import core, ws as ws_mod

DISCONNECTED = "disconnected"
CONNECTING = "connecting"
CONNECTED = "connected"
MAX_MESSAGE = const(4096)     # a larger incoming message is refused with close 1009
_TICK_MS = const(200)
_ANSWER_POLL_MS = const(20)  # while a CALL waits for its answer: the next one leaves right after it (a backlog)
_CONNECT_TIMEOUT_MS = const(10000)
CALL_TIMEOUT_MS = const(20000)   # our CALL unanswered this long is given up (and retried where it matters)
PONG_TIMEOUT_MS = const(10000)   # the read deadline after a ping
BACKOFF_MIN_MS = const(5000)
BACKOFF_MAX_MS = const(300000)
_STABLE_MS = const(60000)        # a connection that lived this long resets the backoff
_DEFAULT_HEARTBEAT_S = const(300)  # when neither the backend nor the settings give one
_BOOT_RETRY_S = const(60)        # BootNotification again after an error or an interval of 0
_MAX_REQUESTS = const(4)
_LINK_KEYS = ("ocpp_url", "ocpp_client_id", "ocpp_password", "ocpp_tls_ca", "ocpp_tls_cert", "ocpp_tls_key")
_EPOCH_2000 = const(946684800)   # ports whose time.time() counts from 2000 (time.gmtime(0) says which)


def backoff_ms(failures, rnd):
    """The wait before reconnect attempt number failures (1, 2, ...): 5 s doubling to 5 min, plus up to a
    quarter more at random (rnd in 0..65535), so that many boxes behind one backend do not return at once."""
    d = BACKOFF_MIN_MS << min(failures - 1, 7)
    if d > BACKOFF_MAX_MS:
        d = BACKOFF_MAX_MS
    return d + (d // 4) * rnd // 65536


class OcppService:
    def __init__(self, config, site, log, hal, evse=None, serial="", version="", model="LoadPilot"):
        self.config = config
        self.site = site
        self.log = log
        self.hal = hal
        self.restart = hal.reset  # the app sets its own restart (App.restart: flush, sessions, then reset)
        self.evse = evse
        self.serial = serial
        self.version = version
        self.model = model
        self.core = core.Core(config.get, config.get("ocpp_connector_id"), config.get("ocpp_available"))
        self.state = DISCONNECTED
        self.last_error = None
        self.connects = 0
        self.failures = 0
        self.boot = None          # None until answered, then "Accepted" | "Pending" | "Rejected"
        self._boot_at = 0         # ticks_ms when the next BootNotification is due
        self.backend_heartbeat_s = 0
        self.clock_offset_s = None  # backend time minus our clock, from the last BootNotification/Heartbeat
        self.calls_in = 0
        self.calls_out = 0
        self.call_errors = 0      # CALLERRORs we answered
        self.call_timeouts = 0
        self.tls_mode = "none"  # dial.NO_TLS until the first connect
        self._ws = ws_mod.WebSocket(MAX_MESSAGE)
        self._sock = None
        self._uid = 0
        self._pending = None      # [uid, action, sent_ms] of our one outstanding CALL
        self._triggers = []       # (action, connector) asked by TriggerMessage
        self._requests = []       # (action, payload) the box asks of the backend (DataTransfer)
        self.last_data_transfer = None
        self._sent_status = [None, None]  # last (status, errorCode) sent for connector 0 and ours
        self._last_call_ms = 0
        self._rx_ms = 0
        self._rx_frames = 0
        self._ping_ms = None
        self._reset = None
        self._relink = False      # a connection setting changed: reconnect now, without backoff
        self.tx = None            # ocpp/tx.Transactions once the session journal is attached
        self._authorizer = lambda: None
        self._ids = None          # ocpp/idcache.IdCache, read on first use
        self._list = None         # ocpp/locallist.LocalList, read on first use
        self._auths = []          # [dev_id, idTag] waiting for Authorize.req; the first is sent next
        self._tx_block = False    # the transaction rules say the local box may not charge (tx.poll)
        self._pending_tx = None   # (kind, Tx) of the outstanding CALL when it is a transaction message
        self._cp = None           # ocpp/smart.SmartCharging once a profile exists or a smart-charging call came
        self._apply_availability()
        config.subscribe(self._config_changed)

    def attach_sessions(self, tracker, root, authorizer=None):
        """Transactions from the session journal (ocpp/tx.py): made at boot, before the first session poll.
        authorizer: () -> the app's Authorizer or None (it is made once authorization is configured)."""
        from loadpilot.ocpp.tx import Transactions
        self.tx = Transactions(self.config, self.site, tracker, self.log, root, authorizer)
        self._authorizer = authorizer or self._authorizer
        self._root = root
        self.tx.on_change = self._tx_poll
        self.tx.id_info = self._id_info
        if self.evse is not None:
            self.tx.offered_ma = self._offered_ma
        self.core.open_tx = self.tx.open_tx
        self.core.list_version = lambda: self.local_list().version
        self.core.list_update = lambda full, version, items: self.local_list().update(full, version, items)
        self.core.charging = self._charging
        self.core.tx_start = lambda: self.tx.current().ts_start
        try:  # smart charging costs nothing until a profile exists
            os.stat((root + "/" if root else "") + "ocpp/profiles.json")
            self._smart().eval()
        except OSError:
            pass

    # ---- smart charging: ocpp/smart.py, loaded on first use

    def _smart(self):
        if self._cp is None:
            from loadpilot.ocpp.smart import SmartCharging
            self._cp = SmartCharging(self)
        return self._cp

    def _charging(self):
        return self._smart().charging()

    def _cp_tick(self):
        if self._cp is not None or self.tx.remote_profile is not None:
            self._smart().tick()

    def _offered_ma(self):
        from loadpilot.evse import pilot  # loaded already by the EVSE task
        return pilot.current_ma_for_duty(self.evse.sm.duty_cpct)

    # ---- authorization (the local whitelist did not know the ID: sessions/auth.py asks here)

    def ids(self):
        if self._ids is None:
            from loadpilot.ocpp.idcache import IdCache
            self._ids = IdCache(getattr(self, "_root", ""), self.log)
        return self._ids

    def local_list(self):
        if self._list is None:
            from loadpilot.ocpp.locallist import LocalList
            self._list = LocalList(getattr(self, "_root", ""), self.log)
        return self._list

    def check_id(self, dev_id, tag):
        """-> "asking" (online: Authorize.req queued, the answer grants), "ocpp" (accepted now: a cached ID
        with LocalPreAuthorize online or LocalAuthorizeOffline offline, or AllowOfflineTxForUnknownId), None."""
        get = self.config.get
        listed = self.local_list().status(tag) if get("ocpp_local_list") else None
        cached = listed == "Accepted" or listed is None and get("ocpp_auth_cache") and tag in self.ids()
        if self.state == CONNECTED and self.boot == "Accepted":
            if cached and get("ocpp_local_preauthorize"):
                return "ocpp"
            if len(self._auths) < _MAX_REQUESTS and [dev_id, tag] not in self._auths:
                self._auths.append([dev_id, tag])
            return "asking"
        if cached and get("ocpp_local_auth_offline"):
            return "ocpp"
        if listed is None and get("ocpp_allow_offline_unknown"):  # a listed Blocked/Expired ID is not unknown
            self.log.info("ocpp", "%s: unknown ID %s accepted offline (AllowOfflineTxForUnknownId)" % (dev_id, tag))
            return "ocpp"
        return None

    def _authorized(self, req, payload):
        dev_id, tag = req
        info = payload.get("idTagInfo")
        st = info.get("status") if isinstance(info, dict) else None
        if st == "Accepted":
            if self.config.get("ocpp_auth_cache"):
                self.ids().add(tag)
            a = self._authorizer()
            if a is not None:
                a.grant(dev_id, tag, "ocpp")
        else:
            self.ids().remove(tag)
            self.log.warn("auth", "%s: ID %s refused by the backend (%s): charging stays locked" % (dev_id, tag, st))

    def _id_info(self, tag, status):
        """A StartTransaction/StopTransaction answer's idTagInfo: the cache learns from it (OCPP 1.6 3.5.1)."""
        if status == "Accepted":
            if self.config.get("ocpp_auth_cache"):
                self.ids().add(tag)
        elif tag in self.ids():
            self.ids().remove(tag)

    def _tx_poll(self):
        self._cp_tick()
        block = self.tx.poll()
        if block != self._tx_block:
            self._tx_block = block
            self._apply_availability()

    async def _tx_loop(self):
        while True:  # online or not: a session's Start is recorded when it is authorized
            self._tx_poll()
            await asyncio.sleep_ms(_TICK_MS)

    def _config_changed(self, key):
        if key in _LINK_KEYS:
            self._relink = True  # cuts a backoff wait short

    # ---- requests from the box ---------------------------------------------------------------------------
    def data_transfer(self, vendor_id, message_id=None, data=None):
        """Queue a DataTransfer to the backend; it goes in turn with the other CALLs once the boot is accepted,
        and its answer shows in the view (data_transfer). Raises ValueError for a bad field or a full queue."""
        p = core.data_transfer_payload(vendor_id, message_id, data)
        if len(self._requests) >= _MAX_REQUESTS:
            raise ValueError("%d requests are waiting already" % _MAX_REQUESTS)
        self._requests.append(("DataTransfer", p))
        self.last_data_transfer = {"status": "queued"}

    def ctl(self, req):
        """The control op: {"op": "ocpp"} -> the view; with "data_transfer": {vendorId, messageId, data} it
        queues one first."""
        dt = req.get("data_transfer")
        if dt is not None:
            if not isinstance(dt, dict):
                raise ValueError("data_transfer: an object with vendorId, messageId, data")
            self.data_transfer(dt.get("vendorId"), dt.get("messageId"), dt.get("data"))
        return self.view()

    # ---- views --------------------------------------------------------------------------------------------
    def client_id(self):
        return self.config.get("ocpp_client_id") or self.serial

    def heartbeat_s(self):
        s = self.config.get("ocpp_heartbeat_s") or self.backend_heartbeat_s
        return s if s > 0 else _DEFAULT_HEARTBEAT_S

    def view(self):
        quiet = time.ticks_diff(time.ticks_ms(), self._rx_ms) if self.state == CONNECTED else None
        st = self._sent_status[1]
        return {"url": self.config.get("ocpp_url"), "client_id": self.client_id(), "state": self.state,
                "tls": self.tls_mode, "boot": self.boot, "connects": self.connects, "last_error": self.last_error,
                "heartbeat_s": self.heartbeat_s(), "quiet_ms": quiet, "operative": self.core.operative,
                "status": st[0] if st else None, "error_code": st[1] if st else None,
                "clock_offset_s": self.clock_offset_s, "calls_in": self.calls_in, "calls_out": self.calls_out,
                "call_errors": self.call_errors, "call_timeouts": self.call_timeouts,
                "data_transfer": self.last_data_transfer,
                "transactions": self.tx.view() if self.tx is not None else None,
                "charging": None if self._cp is None else {"profiles": len(self._cp.profiles.items),
                                                            "limit_ma": self._cp.ma},
                "not_built": "transactions and smart charging at other wallboxes"}

    # ---- the connection task ------------------------------------------------------------------------------
    async def run(self):
        import random
        if self.tx is not None:
            asyncio.create_task(self._tx_loop())
        while True:
            up = None
            self._relink = False  # the settings this attempt reads are the newest
            try:
                await self._connect()
                up = time.ticks_ms()
                await self._session()
            except asyncio.CancelledError:
                self._close()
                raise
            except Exception as e:  # every way a link fails ends here; nothing reboots
                self._note(e)
            self._close()
            if self._relink:  # new settings: use them now; the backoff is for failures
                self._relink = False
                self.failures = 0
                continue
            if up is not None and time.ticks_diff(time.ticks_ms(), up) >= _STABLE_MS:
                self.failures = 0
            self.failures += 1
            wait = backoff_ms(self.failures, random.getrandbits(16))
            t0 = time.ticks_ms()
            # polled, not an asyncio.Event: a changed setting still cuts the wait short, and the Event class
            # (0.6 KB of heap on a box where nothing else loads it) is not needed
            while not self._relink and time.ticks_diff(time.ticks_ms(), t0) < wait:
                await asyncio.sleep_ms(_TICK_MS)

    def _note(self, e):
        msg = "%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__
        if msg != self.last_error:  # the URL holds no password (ocpp_password is its own setting)
            self.log.warn("ocpp", "%s: %s" % (self.config.get("ocpp_url"), msg))
        self.last_error = msg

    def _close(self):
        if self.state == CONNECTED:
            self.log.info("ocpp", "disconnected")
        self.state = DISCONNECTED
        self._ws.detach()
        self._pending = None
        self._pending_tx = None  # a transaction message without an answer stays at the outbox's head
        self._auths = []  # IDs asked of a backend that went away: presented again, the offline rules decide
        s = self._sock
        self._sock = None
        if s is not None:
            try:
                s.close()
            except Exception:
                pass

    async def _connect(self):
        self.state = CONNECTING
        from loadpilot.ocpp import dial  # connect-time code: released again below
        try:
            host = await dial.connect(self, _CONNECT_TIMEOUT_MS)
        finally:
            del dial
            _release()
        self.state = CONNECTED
        self.connects += 1
        self.last_error = None
        self._rx_ms = self._last_call_ms = time.ticks_ms()
        self._rx_frames = self._ws.rx_frames
        self._ping_ms = None
        self._sent_status = [None, None]  # the backend hears the present state after every reconnect
        self.log.info("ocpp", "connected to %s as %s (TLS: %s)" % (host, self.client_id(), self.tls_mode))

    async def _session(self):
        reader = asyncio.create_task(self._reader())
        try:
            while True:
                await asyncio.sleep_ms(_TICK_MS if self._pending is None else _ANSWER_POLL_MS)
                if reader.done():
                    raise ws_mod.WsError(self._reader_error or "connection closed")
                if self._relink:
                    raise ws_mod.WsError("connection settings changed: reconnecting")
                now = time.ticks_ms()
                self._check_link(now)
                if self._ping_ms is None:
                    ping_s = self.config.get("ocpp_ws_ping_s")
                    if ping_s and time.ticks_diff(now, self._rx_ms) >= ping_s * 1000:
                        self._ping_ms = now
                        await self._ws.ping()
                await self._next_call(now)
                if self._reset is not None:
                    await self._do_reset()
        finally:
            reader.cancel()
            try:
                await self._ws.close(ws_mod.CLOSE_GOING_AWAY)
            except Exception:
                pass

    def _check_link(self, now):
        ws = self._ws
        if ws.rx_frames != self._rx_frames:  # any frame (a pong too) proves the link alive
            self._rx_frames = ws.rx_frames
            self._rx_ms = now
            self._ping_ms = None
        limit = 2 * self.heartbeat_s() * 1000
        if time.ticks_diff(now, self._rx_ms) >= limit:
            raise ws_mod.WsError("no traffic for %d s (2 x heartbeat interval): link dead" % (limit // 1000))
        if self._ping_ms is not None and time.ticks_diff(now, self._ping_ms) >= PONG_TIMEOUT_MS:
            raise ws_mod.WsError("no answer to a WebSocket ping within %d s: link dead" % (PONG_TIMEOUT_MS // 1000))

    # ---- incoming -----------------------------------------------------------------------------------------
    _reader_error = None

    async def _reader(self):
        self._reader_error = None
        ws = self._ws
        try:
            while True:
                op, n = await ws.recv()
                if op != ws_mod.OP_TEXT:  # OCPP-J is text only
                    await self._send(core.error("-1", "FormationViolation", "binary frame"))
                    continue
                await self._on_text(ws.message(n))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._reader_error = "%s: %s" % (type(e).__name__, e)

    async def _on_text(self, text):
        try:
            frame = core.parse(text)
        except core.FrameError as e:
            self.call_errors += 1
            await self._send(core.error(e.uid, e.code, str(e)))
            return
        kind, uid = frame[0], frame[1]
        if kind == core.CALL:
            self.calls_in += 1
            try:
                answer, effects = self.core.answer(frame[2], frame[3])
            except core.FrameError as e:
                self.call_errors += 1
                await self._send(core.error(uid, e.code, str(e)))
                return
            except Exception as e:  # a bug must still get an answer, and change nothing more
                self.call_errors += 1
                self.log.error("ocpp", "%s failed: %s: %s" % (frame[2], type(e).__name__, e))
                await self._send(core.error(uid, "InternalError", type(e).__name__))
                return
            await self._send(core.result(uid, answer))  # the answer first: effects may take time (flash)
            for e in effects:
                self._apply(e)
            return
        p = self._pending
        if p is None or p[0] != uid:
            return  # an answer to a CALL we gave up on
        self._pending = None
        if p[1] == "Authorize":
            req = self._auths.pop(0) if self._auths else None
            if req is not None and kind != core.CALLERROR:
                self._authorized(req, frame[2])
            return
        ptx = self._pending_tx
        self._pending_tx = None
        if ptx is not None:
            if kind == core.CALLERROR:
                self.tx.failed(ptx[0], ptx[1], time.ticks_ms(), "CALLERROR %s" % frame[2])
            else:
                self.tx.answered(ptx[0], ptx[1], frame[2])
            return
        if kind == core.CALLERROR:
            self.log.warn("ocpp", "%s refused: %s %s" % (p[1], frame[2], frame[3]))
            if p[1] == "DataTransfer":
                self.last_data_transfer = {"status": "CALLERROR " + frame[2]}
            if p[1] == "BootNotification":
                self._boot_at = time.ticks_add(time.ticks_ms(), _BOOT_RETRY_S * 1000)
            return
        self._on_result(p[1], frame[2])

    def _on_result(self, action, payload):
        if action == "BootNotification":
            status = payload.get("status")
            interval = payload.get("interval")
            interval = interval if isinstance(interval, int) and interval > 0 else 0
            self._set_clock(payload.get("currentTime"))
            self.boot = status if status in ("Accepted", "Pending", "Rejected") else "Rejected"
            if self.boot == "Accepted":
                self.backend_heartbeat_s = interval
            else:  # Pending/Rejected: interval is when to try again (OCPP 1.6 4.2)
                self._boot_at = time.ticks_add(time.ticks_ms(), (interval or _BOOT_RETRY_S) * 1000)
            self.log.info("ocpp", "BootNotification %s (interval %d s)" % (self.boot, interval))
        elif action == "Heartbeat":
            self._set_clock(payload.get("currentTime"))
        elif action == "DataTransfer":
            d = payload.get("data")
            self.last_data_transfer = {"status": str(payload.get("status")),
                                       "data": d[:256] if isinstance(d, str) else None}

    def _set_clock(self, text):
        try:
            t = core.parse_time(text)
        except (ValueError, TypeError):
            return
        self.clock_offset_s = t - time.time() - (_EPOCH_2000 if time.gmtime(0)[0] == 2000 else 0)
        if abs(self.clock_offset_s) > 2 and hasattr(self.hal, "set_clock"):
            self.hal.set_clock(t)  # the board has no NTP client: the backend's time is the best there is
            if self.tx is not None:
                self.tx.clock_set()

    def _apply(self, e):
        what = e[0]
        if what == core.E_AVAILABILITY:
            self.config.set("ocpp_available", e[1])
            self.config.flush()  # persisted at once: a reboot right after must not forget it
            self._apply_availability()
            self.log.info("ocpp", "availability: %s" % ("Operative" if e[1] else "Inoperative"))
        elif what == core.E_CONFIG:
            self.config.set(e[1], e[2])
        elif what == core.E_RESET:
            self._reset = e[1]
        elif what == core.E_TRIGGER:
            self._triggers.append((e[1], e[2]))
        elif what == core.E_REMOTE_START:
            self.tx.remote_start(e[1], e[2] if len(e) > 2 else None)
        elif what == core.E_PROFILES:
            if len(e) > 2:
                self.log.warn("ocpp", "SetChargingProfile rejected: %s" % e[1])
            else:
                self._cp.changed()
        elif what == core.E_REMOTE_STOP:
            self.tx.remote_stop(e[1])
        elif what == core.E_CLEAR_CACHE:
            self.ids().clear()
            self.log.info("ocpp", "ClearCache: the authorization cache is empty")

    def _apply_availability(self):
        # Inoperative: the local charge point offers no current (its OCPP limit, evse/effective.py)
        ev = self.evse
        if ev is not None:
            ok = self.core.operative and not self._tx_block
            ev.limits.ocpp_ma = (self._cp.ma if self._cp is not None else None) if ok else 0

    async def _do_reset(self):
        kind = self._reset
        self._reset = None
        self.log.warn("ocpp", "%s reset asked by the backend: restarting" % kind)
        await asyncio.sleep_ms(500)  # the CALLRESULT is on its way before the socket closes
        await self._ws.close(ws_mod.CLOSE_NORMAL)
        self.restart()  # the app's one planned restart: changes flushed, open sessions journalled as Reboot

    # ---- outgoing -----------------------------------------------------------------------------------------
    async def _send(self, text):
        await self._ws.send(text)

    async def _call(self, action, payload, now):
        self._uid = (self._uid + 1) & 0xFFFFFF
        uid = "%x" % self._uid
        self._pending = [uid, action, now]
        self._last_call_ms = now
        self.calls_out += 1
        await self._send(core.call(uid, action, payload))

    async def _next_call(self, now):
        """One CALL at a time (OCPP-J 4.1.1), in order: BootNotification until accepted, triggered messages,
        status changes, Heartbeat."""
        p = self._pending
        if p is not None:
            if time.ticks_diff(now, p[2]) < CALL_TIMEOUT_MS:
                return
            self.call_timeouts += 1
            self.log.warn("ocpp", "%s: no answer within %d s" % (p[1], CALL_TIMEOUT_MS // 1000))
            self._pending = None
            if p[1] == "BootNotification":
                self._boot_at = time.ticks_add(now, _BOOT_RETRY_S * 1000)
            elif p[1] == "StatusNotification":
                self._sent_status = [None, None]
            elif p[1] == "DataTransfer":
                self.last_data_transfer = {"status": "no answer"}
            elif p[1] == "Authorize" and self._auths:
                self._auths.pop(0)  # the car stays locked; presenting the ID again asks again
            ptx = self._pending_tx
            self._pending_tx = None
            if ptx is not None:
                self.tx.failed(ptx[0], ptx[1], now, "no answer")
        if self.boot != "Accepted":
            if self._triggers and self.boot == "Pending":  # the backend may ask while it decides
                pass
            elif time.ticks_diff(now, self._boot_at) >= 0:
                await self._call("BootNotification", core.boot_payload(self.model, self.serial, self.version), now)
                return
            else:
                return
        if self._triggers:
            action, cid = self._triggers.pop(0)
            if action == "BootNotification":
                await self._call(action, core.boot_payload(self.model, self.serial, self.version), now)
            elif action == "Heartbeat":
                await self._call(action, {}, now)
            elif action == "MeterValues":
                p = self.tx.trigger_payload(cid)
                if p is not None:
                    await self._call(action, p, now)
            else:  # StatusNotification: forget what was sent for that connector (None: both), so it goes again
                if cid is None or cid == 0:
                    self._sent_status[0] = None
                if cid is None or cid:
                    self._sent_status[1] = None
                await self._send_status(now)
            return
        if await self._send_status(now):
            return
        if self._auths:  # a driver waits at the box: before the transaction backlog
            await self._call("Authorize", {"idTag": self._auths[0][1]}, now)
            return
        if self.tx is not None and await self._send_tx(now):
            return
        if self._requests:
            action, payload = self._requests.pop(0)
            await self._call(action, payload, now)
            return
        if time.ticks_diff(now, self._last_call_ms) >= self.heartbeat_s() * 1000:
            await self._call("Heartbeat", {}, now)

    async def _send_tx(self, now):
        """The outbox's head, in order; a failed one again after its retry interval. -> True if one was sent."""
        n = self.tx.next(now)
        if n is None:
            return False
        await self._call(n[0], n[1], now)
        self._pending_tx = n[2]
        return True

    control = None  # evse/control.EvseControl (app.py): its Modbus availability makes our connector Unavailable

    def status_index(self):
        """Our connector's status as OMCCI 104 reads it (its index in OCPP 1.6's enumeration)."""
        return core.STATUS_NAMES.index(self._local_status()[0])

    def _local_status(self):
        d = self.site.device(self.site.local_id) if self.site.local_id else None
        state = d.status if d is not None else 1
        fault = None
        if self.evse is not None:
            from loadpilot.evse.state_machine import ERROR_NAMES
            fault = ERROR_NAMES[self.evse.sm.error]
        st = self.core.status(state, fault, self.tx.phase() if self.tx is not None else 0,
                              self._offered_ma() if self.evse is not None else None)
        c = self.control
        if c is not None and not c.available and st[1] == "NoError":
            st = ("Unavailable", "NoError")  # a Modbus master (OMCCI 124) took the box out of service
        if self.tx is not None and self.tx.full_now and st[1] == "NoError":
            return st[0], "OtherError"  # the transaction outbox is full (info in the notification)
        return st

    async def _send_status(self, now):
        """A StatusNotification for the first connector whose status changed since it was last sent: 0 (the
        whole charge point) or ours. -> True if one was sent."""
        ours = self._local_status()
        whole = ("Available", "NoError") if self.core.operative else ("Unavailable", "NoError")
        for i, st in ((0, whole), (1, ours)):
            if self._sent_status[i] != st:
                self._sent_status[i] = st
                p = {"connectorId": 0 if i == 0 else self.core.connector, "status": st[0], "errorCode": st[1]}
                if i and st[1] == "OtherError" and self.tx is not None and self.tx.full_now:
                    p["info"] = "transaction queue full"
                await self._call("StatusNotification", p, now)
                return True
        return False


def _release():
    # code that runs once per connect leaves the heap between connects (docs/ocpp.md, "Memory and cost");
    # dns.py and tcp.py stay: MQTT holds them
    pkg = sys.modules["loadpilot.ocpp"]
    for name in ("dial", "url", "tls"):
        sys.modules.pop("loadpilot.ocpp." + name, None)
        if hasattr(pkg, name):  # tls.py is not loaded for a ws:// backend
            delattr(pkg, name)
