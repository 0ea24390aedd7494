# OCPP transactions of the box's own connector, driven by the session journal (docs/ocpp.md, "Transactions").
# A session at the local charge point (sessions/tracker.py) that is authorized gets a StartTransaction recorded
# in the outbox (ocpp/outbox.py); its end (the tracker's close listener, or the journal's PowerLoss recovery at
# boot) records the StopTransaction. The service sends the outbox's head whenever it is connected; this module
# only decides what to record, and runs online or not. Imported only when ocpp_url is set.
import time
from micropython import const

from loadpilot.codes import STOP_DEAUTHORIZED, STOP_POWER_LOSS, STOP_REASONS, STOP_REMOTE
from loadpilot.ocpp.core import ID_STATUS, MEASURANDS
from loadpilot.ocpp.outbox import K_START, Outbox
_INVALID = const(3)
K_METER = const(9)    # a MeterValues sample: in RAM only (docs/ocpp.md, "MeterValues"), never an outbox record
TX_NONE = const(0)     # phase(): no transaction at our connector
TX_RUNNING = const(1)  # a transaction runs
TX_ENDED = const(2)    # its transaction ended while the car is still plugged (StatusNotification Finishing)
MAX_SAMPLES = const(8)  # unsent samples kept: the newest; an older one is dropped when a new one comes
_PHASES = ("L1", "L2", "L3")
_EPOCH_2000 = const(946684800)   # ports whose time.time() counts from 2000


def unix_now():
    """Unix seconds now (OCPP timestamps), whatever the port's epoch."""
    t = int(time.time())
    return t + _EPOCH_2000 if time.gmtime(0)[0] == 2000 else t


def iso(t):
    """Unix seconds -> an OCPP timestamp text (UTC)."""
    if time.gmtime(0)[0] == 2000:
        t -= _EPOCH_2000
    g = time.gmtime(t)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (g[0], g[1], g[2], g[3], g[4], g[5])


def _amps(ma):
    return "%d.%03d" % (ma // 1000, ma % 1000) if ma >= 0 else "-" + _amps(-ma)


def _value(v, context, measurand, unit, phase=None):
    d = {"value": v, "context": context, "measurand": measurand, "unit": unit}
    if phase is not None:
        d["phase"] = phase
    return d


def _reading(ts, wh, context):
    """transactionData's meter value: the start or end meter, from the outbox record (survives a reboot)."""
    return {"timestamp": iso(ts), "sampledValue": [{"value": str(wh), "context": context,
                                                    "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}


class Transactions:
    def __init__(self, config, site, tracker, log, root, authorizer=None):
        self.config = config
        self.authorizer = authorizer or (lambda: None)  # -> sessions/auth.Authorizer or None (made lazily)
        self.remote = None       # (idTag, ticks_ms, chargingProfile or None) of a RemoteStartTransaction waiting
        self.remote_profile = None  # the chargingProfile of the RemoteStart a session took: its TxProfile
        self.site = site
        self.tracker = tracker
        self.log = log
        self.outbox = Outbox(root, log)
        self.blocked = False     # the outbox is full, "Disallow charging if OCPP queue full" is on, no tx
        self.full_now = False    # a session waits for room in the outbox (StatusNotification says so)
        self.refused = None      # seq of a session whose transaction the backend ended (refused idTag,
        #                          RemoteStopTransaction): 0 A until the car is unplugged
        self.attempts = 0        # failed attempts of the outbox's head
        self.retry_at = 0        # ticks_ms before which the head is not sent again
        self.on_change = None    # the service re-polls at once when a session ended
        self.samples = []        # [(Tx or None, unix s, Wh, W, (mA L1..L3), offered mA, (V L1..L3), context,
        #                          measurands' settings row)]: MeterValues to send
        self.clock = None        # ocpp/aligned.Clock while ClockAlignedDataInterval is not 0
        self.id_info = None      # (idTag, status) -> None: the service's authorization cache learns from answers
        self.samples_dropped = 0
        self.offered_ma = None   # () -> the current the local box offers now (the service sets it)
        self._sample_at = None   # ticks_ms of the next MeterValues sample of the open transaction
        self._wall_offset = 0    # journal times -> Unix seconds (they are in the port's epoch)
        if time.gmtime(0)[0] == 2000:
            self._wall_offset = _EPOCH_2000
        tracker.listeners.append(self._closed)
        self._recover()

    # ---- the journal's side

    def _recover(self):
        """At boot every unstopped transaction belongs to a session that is over (no session survives a boot):
        record its Stop now, before a new session at the connector can start one."""
        pending = [t for t in self.outbox.txs if t.stop is None]
        if not pending:
            return
        rec = {}
        for s in self.tracker.journal.recovered:
            rec[s.seq] = s
        for t in pending:
            s = rec.get(t.seq) or self._journalled(t.seq)
            if s is not None:
                self._stop(t, s, s.reason)
            else:  # not in the journal at all (its flash failed): the Stop says what is known
                self.outbox.stop(t, t.meter_start, unix_now(), STOP_POWER_LOSS)
            self.log.warn("ocpp", "transaction of session %d ended while the box was down: StopTransaction %s"
                          % (t.seq, STOP_REASONS[t.stop[2]]))

    def _journalled(self, seq):
        from loadpilot.sessions.history import records  # rare: a cut between closing a session and its Stop
        from loadpilot.sessions.journal import Session
        found = None
        for s in records(self.tracker.journal):
            if s.seq == seq:
                found = Session()
                found.seq, found.reason, found.wall, found.end_s = s.seq, s.reason, s.wall, s.end_s
                found.meter_start_wh, found.meter_end_wh = s.meter_start_wh, s.meter_end_wh
        return found

    def _ts(self, s, end):
        t = s.end_s if end else s.start_s
        return t + self._wall_offset if s.wall else unix_now()

    def _stop(self, t, s, reason):
        m = s.meter_end_wh if s.meter_end_wh >= 0 else t.meter_start
        self.outbox.stop(t, m, self._ts(s, True), reason)

    def _closed(self, s):
        """The tracker's listener: a session was journalled as closed."""
        if s.dev_id != self.site.local_id:
            return
        t = self.outbox.find(s.seq)
        if t is None and s.method and s.meter_start_wh >= 0 and self.refused != s.seq:
            t = self._start(s)  # authorized and over between two polls: its transaction still happened
        if t is not None and t.stop is None:
            self._stop(t, s, s.reason)
        if self.refused == s.seq:
            self.refused = None
        self.blocked = self.full_now = False
        if self.on_change is not None:  # a full outbox blocks the next car now, not at the next poll
            self.on_change()

    def id_tag(self, s):
        """The idTag a session's transaction is started with: a RemoteStartTransaction's; the ID presented;
        without one (free charging, a box without a reader) the fixed RFID if set, else the free-charging tag."""
        r = self.remote
        if r is not None:
            self.remote = None
            if time.ticks_diff(time.ticks_ms(), r[1]) < self.config.get("vehicle_connection_timeout_s") * 1000:
                self.remote_profile = r[2]
                return r[0]
        if s.id_tag and s.method not in ("free", "open"):
            return s.id_tag
        return self.config.get("ocpp_fixed_rfid") or self.config.get("free_charging_tag")

    def poll(self):
        """Record the Start of an authorized session at the local connector (every 200 ms; allocates nothing
        while there is nothing to record). -> True if the local box may not charge (the outbox-full rule or a
        transaction the backend refused)."""
        s = self.tracker.open.get(self.site.local_id) if self.site.local_id else None
        self._sample(s)
        if self.clock is not None or self.config.get("ocpp_aligned_interval_s"):
            self._aligned(s)
        if s is None:  # a full outbox with the rule on: no current even before a car comes (none can be recorded)
            return self.outbox.full() and self.config.get("ocpp_queue_full_block")
        if self.refused == s.seq:
            return True
        if not s.method or s.meter_start_wh < 0:
            return self.outbox.full() and self.config.get("ocpp_queue_full_block")
        ob = self.outbox
        if ob.txs and ob.txs[-1].seq == s.seq:
            return False
        if ob.find(s.seq) is not None:
            return False
        if ob.full():
            if not self.full_now:
                self.full_now = True
                self.blocked = self.config.get("ocpp_queue_full_block")
                self.log.warn("ocpp", "transaction outbox full (%d unsent transactions): session %d %s" % (
                    len(ob.txs), s.seq, "may not charge" if self.blocked else "charges without an OCPP transaction "
                    "until there is room (it is in the session journal)"))
            return self.blocked
        self._start(s)
        self.full_now = self.blocked = False
        return False

    def _sample(self, s):
        """MeterValues every MeterValueSampleInterval while the local connector's transaction is open (a tuple
        per sample, nothing else: the interval check allocates nothing)."""
        ob = self.outbox
        t = ob.txs[-1] if ob.txs else None
        iv = self.config.get("ocpp_meter_interval_s")
        if not iv or t is None or t.stop is not None or s is None or s.seq != t.seq:
            self._sample_at = None
            return
        now = time.ticks_ms()
        if self._sample_at is None:  # the first sample one interval after the Start (the Start holds meterStart)
            self._sample_at = time.ticks_add(now, iv * 1000)
            return
        if time.ticks_diff(now, self._sample_at) < 0:
            return
        self._sample_at = time.ticks_add(now, iv * 1000)
        self._queue(self.take(t, s, unix_now(), "Sample.Periodic", "ocpp_meter_measurands"))

    def _aligned(self, s):
        """ClockAlignedDataInterval: a sample at every wall-clock multiple of the interval from midnight (UTC),
        with or without a transaction (ocpp/aligned.py is imported only while the interval is not 0; between
        boundaries the check allocates nothing)."""
        iv = self.config.get("ocpp_aligned_interval_s")
        if not iv:
            self.clock = None
            return
        if self.clock is None:
            from loadpilot.ocpp.aligned import Clock
            self.clock = Clock()
        ts = self.clock.due(iv)
        if ts is None:
            return
        t = self.current()
        if t is not None and (s is None or s.seq != t.seq):
            t = None
        self._queue(self.take(t, s, ts, "Sample.Clock", "ocpp_aligned_measurands"))

    def clock_set(self):
        """The wall clock jumped (set from the backend): the aligned boundaries are computed again."""
        if self.clock is not None:
            self.clock.iv = 0

    def _queue(self, m):
        if m is None:
            return
        if len(self.samples) >= MAX_SAMPLES:
            self.samples.pop(0)
            self.samples_dropped += 1
        self.samples.append(m)

    def take(self, t, s, ts, context, row):
        """A sample of the local box now (one tuple) for transaction t (None: outside one), or None without a
        reading. The energy is the session's meter while a session runs, else the box's meter reading."""
        d = self.site.devices.get(self.site.local_id) if self.site.local_id else None
        if d is None or d.reading.updated_ms is None:
            return None
        r = d.reading
        c = r.current_ma
        v = r.voltage_v
        off = self.offered_ma() if self.offered_ma is not None else None
        wh = s.meter_end_wh if s is not None and s.meter_end_wh >= 0 else r.import_wh
        return (t, ts, wh, r.power_w, (c[0], c[1], c[2]), off, (v[0], v[1], v[2]), context, row)

    def trigger_payload(self, cid):
        """TriggerMessage MeterValues: a sample now with context Trigger and the MeterValuesSampledData
        measurands, for our connector (with the open transaction's id once it has one) or for connector 0."""
        s = self.tracker.open.get(self.site.local_id) if self.site.local_id else None
        t = self.current()
        if cid == 0 or t is None or t.txid is None or t.txid < 0 or s is None or s.seq != t.seq:
            t = None
        m = self.take(t, s, unix_now(), "Trigger", "ocpp_meter_measurands")
        if m is None:
            return None
        p = self.meter_payload(m)
        if cid == 0:
            p["connectorId"] = 0
        return p

    def phase(self):
        """TX_NONE, TX_RUNNING or TX_ENDED for the session at our connector (allocates nothing)."""
        s = self.tracker.open.get(self.site.local_id) if self.site.local_id else None
        if s is None:
            return TX_NONE
        ob = self.outbox
        t = ob.txs[-1] if ob.txs else None
        if t is not None and t.seq == s.seq:
            return TX_RUNNING if t.stop is None else TX_ENDED
        return TX_ENDED if self.refused == s.seq else TX_NONE

    def meter_payload(self, m):
        """A sample -> MeterValues.req with the measurands its settings row chooses (MeterValuesSampledData or
        MeterValuesAlignedData; values are decimal text: Wh, W, A with up to 3 decimals, V)."""
        want = self.config.get(m[8]).split(",")
        ctx = m[7]
        sv = []
        for name in MEASURANDS:
            if name not in want:
                continue
            if name == "Energy.Active.Import.Register":
                sv.append(_value(str(m[2]), ctx, name, "Wh"))
            elif name == "Power.Active.Import":
                sv.append(_value(str(m[3]), ctx, name, "W"))
            elif name == "Current.Import":
                for i in range(3):
                    sv.append(_value(_amps(m[4][i]), ctx, name, "A", _PHASES[i]))
            elif name == "Current.Offered":
                if m[5] is not None:
                    sv.append(_value(_amps(m[5]), ctx, name, "A"))
            else:
                for i in range(3):
                    if m[6][i]:  # unknown (0): left out
                        sv.append(_value(str(m[6][i]), ctx, name, "V", _PHASES[i] + "-N"))
        t = m[0]
        p = {"connectorId": self.config.get("ocpp_connector_id") if t is None else t.connector,
             "meterValue": [{"timestamp": iso(m[1]), "sampledValue": sv}]}
        if t is not None:
            p["transactionId"] = t.txid
        return p

    def _start(self, s):
        t = self.outbox.start(s.seq, self.config.get("ocpp_connector_id"), self.id_tag(s), s.meter_start_wh,
                              self._ts(s, False))
        if t is not None:
            self.log.info("ocpp", "session %d: StartTransaction recorded" % s.seq)
        return t

    # ---- the backend's side (called by the service)

    def open_tx(self):
        """(the open transaction's id or None, True while a session or transaction runs at our connector)."""
        ob = self.outbox
        t = ob.txs[-1] if ob.txs else None
        if t is not None and t.stop is None:
            return (t.txid if t.txid is not None and t.txid >= 0 else None), True
        s = self.tracker.open.get(self.site.local_id) if self.site.local_id else None
        return None, s is not None and bool(s.method)  # a car authorized already (or its transaction ended)

    def current(self):
        """The open transaction of our connector (a Tx) or None; allocates nothing."""
        ob = self.outbox
        t = ob.txs[-1] if ob.txs else None
        return t if t is not None and t.stop is None else None

    def remote_start(self, tag, profile=None):
        """RemoteStartTransaction accepted: the backend authorized tag for our connector
        (AuthorizeRemoteTxRequests false). The car there, or the next one within the vehicle connection
        timeout, charges with a transaction for tag."""
        self.remote = (tag, time.ticks_ms(), profile)
        a = self.authorizer()
        if a is not None and self.site.local_id:
            a.grant(self.site.local_id, tag, "ocpp")
        self.log.info("ocpp", "RemoteStartTransaction for %s" % tag)

    def remote_stop(self, txid):
        """RemoteStopTransaction accepted: the transaction ends (reason Remote) and charging stops; the session
        stays open until the car is unplugged."""
        ob = self.outbox
        t = ob.txs[-1] if ob.txs else None
        s = self.tracker.open.get(self.site.local_id) if self.site.local_id else None
        if t is None or t.txid != txid or t.stop is not None:
            return
        ob.stop(t, s.meter_end_wh if s is not None else t.meter_start, unix_now(), STOP_REMOTE)
        if s is not None and s.seq == t.seq:
            self.refused = s.seq
        self.log.info("ocpp", "RemoteStopTransaction: transaction %d ended, charging stopped" % txid)
        if self.on_change is not None:
            self.on_change()

    def next(self, now):
        """The outbox's head to send now: (action, payload, (kind, Tx)), or None (empty, or a failed one waiting
        for its retry time). A Stop whose Start was given up has no transactionId to name: it is given up too."""
        while True:
            sm = self.samples
            t = sm[0][0] if sm else None
            if sm and (t is None or t.txid is not None) and (not self.attempts or
                                                              time.ticks_diff(now, self.retry_at) >= 0):
                if t is None or t.txid >= 0:  # before the head: a transaction's samples go before its Stop
                    return "MeterValues", self.meter_payload(sm[0]), (K_METER, sm[0])
                sm.pop(0)  # its Start was given up: no transactionId to name
                continue
            h = self.outbox.head()
            if h is None or self.attempts and time.ticks_diff(now, self.retry_at) < 0:
                return None
            kind, t = h
            if kind == K_START or t.txid >= 0:
                action, payload = self.payload(kind, t)
                return action, payload, h
            self.log.error("ocpp", "session %d: StopTransaction dropped: its Start was never accepted" % t.seq)
            self.outbox.stopped(t)

    def payload(self, kind, t):
        if kind == K_START:
            return "StartTransaction", {"connectorId": t.connector, "idTag": t.id_tag, "meterStart": t.meter_start,
                                        "timestamp": iso(t.ts_start)}
        m, ts, reason = t.stop
        return "StopTransaction", {"transactionId": t.txid, "meterStop": m, "timestamp": iso(ts),
                                   "reason": STOP_REASONS[reason], "idTag": t.id_tag, "transactionData": [
                                       _reading(t.ts_start, t.meter_start, "Transaction.Begin"),
                                       _reading(ts, m, "Transaction.End")]}

    def answered(self, kind, t, payload):
        self.attempts = 0
        ob = self.outbox
        if kind == K_METER:
            self._unsample(t)
            return
        if kind != K_START:
            info = payload.get("idTagInfo")  # optional in StopTransaction.conf: the cache learns from it too
            if isinstance(info, dict) and self.id_info is not None and isinstance(info.get("status"), str):
                self.id_info(t.id_tag, info["status"])
            ob.stopped(t)
            return
        txid = payload.get("transactionId")
        info = payload.get("idTagInfo")
        st = info.get("status") if isinstance(info, dict) else None
        status = ID_STATUS.index(st) if st in ID_STATUS else _INVALID
        if not isinstance(txid, int) or isinstance(txid, bool):
            txid = -1
        ob.started(t, txid, status)
        self.log.info("ocpp", "session %d: transaction %d, idTag %s" % (t.seq, txid, ID_STATUS[status]))
        if st is not None and self.id_info is not None:  # OCPP 1.6 3.5.1: the cache learns from this answer too
            self.id_info(t.id_tag, st)
        if status and t.stop is None:  # StopTransactionOnInvalidId: end it and stop charging until unplug
            s = self.tracker.open.get(self.site.local_id)
            if s is not None and s.seq == t.seq:
                self.refused = t.seq
                ob.stop(t, s.meter_end_wh, unix_now(), STOP_DEAUTHORIZED)

    def failed(self, kind, t, now, why):
        """A CALLERROR or no answer: try again after TransactionMessageRetryInterval x attempts, give the
        message up after TransactionMessageAttempts (OCPP 1.6 4.10)."""
        self.attempts += 1
        limit = self.config.get("ocpp_tx_attempts")
        name = "StartTransaction" if kind == K_START else "MeterValues" if kind == K_METER else "StopTransaction"
        if self.attempts >= limit:
            self.attempts = 0
            if kind == K_METER:
                self.log.error("ocpp", "MeterValues given up after %d attempts (%s)" % (limit, why))
                self._unsample(t)
                return
            self.log.error("ocpp", "session %d: %s given up after %d attempts (%s)" % (t.seq, name, limit, why))
            if kind == K_START:
                self.outbox.started(t, -1, _INVALID)
            else:
                self.outbox.stopped(t)
            return
        self.retry_at = time.ticks_add(now, self.config.get("ocpp_tx_retry_s") * 1000 * self.attempts)

    def _unsample(self, m):
        if self.samples and self.samples[0] is m:
            self.samples.pop(0)

    def view(self):
        ob = self.outbox
        cur = ob.txs[-1] if ob.txs else None
        return {"queued": len(ob.queue), "unfinished": len(ob.txs), "full": ob.full(), "records": ob.records,
                "compactions": ob.compactions, "meter_samples": len(self.samples),
                "meter_samples_dropped": self.samples_dropped, "blocked": self.blocked or self.refused is not None,
                "transaction_id": cur.txid if cur is not None and cur.stop is None else None}
