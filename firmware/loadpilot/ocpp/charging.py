# OCPP 1.6 smart charging, pure (docs/ocpp.md, "Smart charging"): the charging profiles the backend set, their
# schedule math (Absolute, Recurring Daily/Weekly, Relative; validFrom/validTo; periods with numberPhases; A or W)
# and the limit now by the OCPP rules: per purpose the highest stack level that is active; a TxProfile replaces
# the TxDefaultProfile while it is active; the ChargePointMaxProfile caps both. No I/O: the service stores the
# profiles (store_text / load_text) and feeds the limit into evse.limits.ocpp_ma. Imported only when a profile
# exists or a smart-charging call arrives.
from micropython import const

from loadpilot.ocpp.core import E_PROFILES, FrameError, parse_time

MAX_PROFILES = const(8)      # profiles kept; one more is Rejected
MAX_PERIODS = const(24)      # ChargingScheduleMaxPeriods
VOLTS = const(230)           # W -> A: W / (230 V x phases)
_DAY = const(86400)
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
KINDS = ("Absolute", "Recurring", "Relative")
RECURRENCY = ("Daily", "Weekly")
UNITS = ("A", "W")
_CPMAX = const(0)
_TXDEF = const(1)
_TX = const(2)


def _req(d, name, kind, required=True):
    v = d.get(name)
    if v is None:
        if required:
            raise FrameError(None, "OccurenceConstraintViolation", "%s is required" % name)
        return None
    if kind is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    else:
        ok = isinstance(v, kind) and not (kind is int and isinstance(v, bool))
    if not ok:
        raise FrameError(None, "TypeConstraintViolation", "%s has the wrong type" % name)
    return v


def _enum(d, name, allowed, required=True):
    v = _req(d, name, str, required)
    if v is not None and v not in allowed:
        raise FrameError(None, "PropertyConstraintViolation", "%s must be one of %s" % (name, ", ".join(allowed)))
    return v


def _time(d, name):
    v = _req(d, name, str, False)
    if v is None:
        return None
    try:
        return parse_time(v)
    except ValueError:
        raise FrameError(None, "TypeConstraintViolation", "%s is not a time" % name)


class Profile:
    """One charging profile, parsed. periods: ((startPeriod s, limit in the unit, numberPhases), ...)."""

    def __init__(self, cid, p, now):
        self.connector = cid
        self.id = _req(p, "chargingProfileId", int)
        self.stack = _req(p, "stackLevel", int)
        self.purpose = PURPOSES.index(_enum(p, "chargingProfilePurpose", PURPOSES))
        self.kind = KINDS.index(_enum(p, "chargingProfileKind", KINDS))
        r = _enum(p, "recurrencyKind", RECURRENCY, False)
        self.period_s = None if r is None else (_DAY if r == "Daily" else 7 * _DAY)
        self.txid = _req(p, "transactionId", int, False)
        self.valid_from = _time(p, "validFrom")
        self.valid_to = _time(p, "validTo")
        s = _req(p, "chargingSchedule", dict)
        self.duration = _req(s, "duration", int, False)
        self.start = _time(s, "startSchedule")
        self.watts = _enum(s, "chargingRateUnit", UNITS) == "W"
        per = _req(s, "chargingSchedulePeriod", list)
        out = []
        for x in per:
            if not isinstance(x, dict):
                raise FrameError(None, "TypeConstraintViolation", "chargingSchedulePeriod entries are objects")
            out.append((_req(x, "startPeriod", int), _req(x, "limit", float), _req(x, "numberPhases", int, False)))
        self.periods = tuple(out)
        self.raw = p  # stored as the backend sent it (with the time it was set, for an Absolute without a start)
        if self.start is None and self.kind == 0:
            self.start = p.setdefault("_set", now)

    def problem(self, connector, txid):
        """Why this profile is Rejected (a text), or None. connector: ours; txid: the open transaction or None."""
        if self.stack < 0 or self.id <= 0:
            return "negative stackLevel or id"
        if not 1 <= len(self.periods) <= MAX_PERIODS:
            return "1..%d periods" % MAX_PERIODS
        last = -1
        for sp, lim, ph in self.periods:
            if sp <= last or lim < 0 or ph is not None and not 1 <= ph <= 3:
                return "periods must start in increasing order with a limit >= 0 and 1..3 phases"
            last = sp
        if self.periods[0][0] != 0:
            return "the first period must start at 0"
        if self.duration is not None and self.duration <= 0:
            return "duration must be > 0"
        if self.valid_from is not None and self.valid_to is not None and self.valid_to <= self.valid_from:
            return "validTo before validFrom"
        if (self.kind == 1) != (self.period_s is not None):
            return "recurrencyKind goes with Recurring, and only with it"
        if self.kind == 1 and self.start is None:
            return "a Recurring profile needs startSchedule"
        if self.connector not in (0, connector):
            return "not our connector"
        if self.purpose == _CPMAX and self.connector != 0:
            return "ChargePointMaxProfile is for connector 0"
        if self.purpose == _TX:
            if self.connector == 0:
                return "TxProfile needs a connector"
            if txid is None or self.txid is not None and self.txid != txid:
                return "TxProfile without its transaction"
        elif self.txid is not None:
            return "transactionId only in a TxProfile"
        return None

    def at(self, t, tx_start):
        """(limit in mA or None, Unix s of the next change or None) at Unix time t. tx_start: the open
        transaction's start (Relative schedules) or None."""
        if self.valid_from is not None and t < self.valid_from:
            return None, self.valid_from
        if self.valid_to is not None and t >= self.valid_to:
            return None, None
        if self.kind == 2:
            if tx_start is None:
                return None, None
            start = tx_start
        else:
            start = self.start
            if self.period_s is not None and t >= start:
                start += (t - start) // self.period_s * self.period_s
        off = t - start
        if off < 0:
            return None, start
        end = None if self.duration is None else start + self.duration
        if self.period_s is not None:
            nxt = start + self.period_s
            end = nxt if end is None or end > nxt else end
        if end is not None and t >= end:
            return None, (start + self.period_s if self.period_s is not None else None)
        cur = None
        nxt = end
        for p in self.periods:
            if p[0] <= off:
                cur = p
            else:
                b = start + p[0]
                nxt = b if nxt is None or b < nxt else nxt
                break
        if self.valid_to is not None and (nxt is None or self.valid_to < nxt):
            nxt = self.valid_to
        return to_ma(cur[1], cur[2], self.watts), nxt


def to_ma(limit, phases, watts):
    """A period's limit -> mA: A as given; W / (230 V x phases, 3 when not given)."""
    if watts:
        return int(limit * 1000) // (VOLTS * (phases or 3))
    return int(limit * 1000)


class Profiles:
    """The installed profiles of our connector and connector 0."""

    def __init__(self, connector, items=(), log=None):
        self.connector = connector
        self.items = []
        self.dropped = 0  # profiles from flash for another connector (ocpp_connector_id changed since)
        for cid, p in items:  # from flash: validated when they were set; a TxProfile ended with its transaction
            try:
                x = Profile(cid, p, 0)
            except FrameError:
                continue
            if cid != 0 and cid != connector:  # set for the connector we were before: not ours now
                self.dropped += 1
                if log is not None:
                    log.warn("ocpp", "charging profile %d dropped: it is for connector %d, ours is %d"
                             % (x.id, cid, connector))
                continue
            if x.purpose != _TX:
                self.items.append(x)

    def set(self, cid, p, txid, now):
        """SetChargingProfile -> (status, why). Raises FrameError for a malformed profile; a Rejected one
        changes nothing."""
        if not isinstance(p, dict):
            raise FrameError(None, "TypeConstraintViolation", "csChargingProfiles is an object")
        pr = Profile(cid, p, now)
        why = pr.problem(self.connector, txid)
        if why is not None:
            return "Rejected", why
        if pr.purpose == _TX and pr.txid is None:
            pr.txid = txid
        keep = [x for x in self.items if x.id != pr.id and not (
            x.stack == pr.stack and x.purpose == pr.purpose and x.connector == pr.connector)]
        if len(keep) >= MAX_PROFILES:
            return "Rejected", "at most %d profiles" % MAX_PROFILES
        keep.append(pr)
        self.items = keep
        return "Accepted", None

    def clear(self, pid=None, cid=None, purpose=None, stack=None):
        """ClearChargingProfile: by id, or by all the criteria given -> "Accepted" if any went, else "Unknown"."""
        n = len(self.items)
        if pid is not None:
            self.items = [x for x in self.items if x.id != pid]
        else:
            pi = None if purpose is None else PURPOSES.index(purpose)
            self.items = [x for x in self.items if not (
                (cid is None or x.connector == cid) and (pi is None or x.purpose == pi)
                and (stack is None or x.stack == stack))]
        return "Accepted" if len(self.items) < n else "Unknown"

    def end_tx(self):
        """The transaction ended: its TxProfiles go (OCPP 1.6 3.13.4). -> True if any went."""
        n = len(self.items)
        self.items = [x for x in self.items if x.purpose != _TX]
        return len(self.items) < n

    def limit(self, t, txid, tx_start):
        """(limit now in mA or None, Unix s of the next change or None)."""
        best = [None, None, None]  # per purpose: (stack, mA) of the active profile with the highest stack
        nxt = None
        for x in self.items:
            if x.purpose == _TX and (txid is None or x.txid != txid):
                continue
            ma, n = x.at(t, tx_start)
            if n is not None and (nxt is None or n < nxt):
                nxt = n
            if ma is None:
                continue
            b = best[x.purpose]
            if b is None or x.stack > b[0]:
                best[x.purpose] = (x.stack, ma)
        cap = best[_CPMAX]
        tx = best[_TX] or best[_TXDEF]  # a TxProfile in force replaces the default
        lim = None if tx is None else tx[1]
        if cap is not None and (lim is None or cap[1] < lim):
            lim = cap[1]
        return lim, nxt

    def composite(self, t0, duration, watts, txid, tx_start, max_ma, phases=3):
        """GetCompositeSchedule's chargingSchedule from t0 for duration s; a stretch no profile limits has the
        box's own maximum (max_ma)."""
        periods = []
        t = t0
        end = t0 + duration
        while t < end:
            ma, n = self.limit(t, txid, tx_start)
            if ma is None:
                ma = max_ma
            lim = ma * VOLTS * phases // 1000 if watts else ma / 1000
            if not periods or periods[-1]["limit"] != lim:
                periods.append({"startPeriod": t - t0, "limit": lim, "numberPhases": phases})
            if n is None or n <= t:
                break
            t = n
        return {"duration": duration, "chargingRateUnit": "W" if watts else "A",
                "chargingSchedulePeriod": periods}

    def stored(self):
        """The profiles as stored on flash: [[connector, profile as sent], ...]."""
        return [[x.connector, x.raw] for x in self.items]


# ---- the CALLs (ocpp/core.Core hands them here; core.charging() -> (Profiles, Unix s now, box max mA))

def _int(p, name, required):
    return _req(p, name, int, required)


def answer_set(core, p):
    cid = _int(p, "connectorId", True)
    cp = _req(p, "csChargingProfiles", dict)
    ps, now, _ = core.charging()
    txid = core.open_tx()[0] if core.open_tx is not None else None
    st, why = ps.set(cid, cp, txid, now)
    return {"status": st}, (((E_PROFILES, why),) if st == "Accepted" else ((E_PROFILES, why, False),))


def answer_clear(core, p):
    pid = _int(p, "id", False)
    cid = _int(p, "connectorId", False)
    purpose = _enum(p, "chargingProfilePurpose", PURPOSES, False)
    stack = _int(p, "stackLevel", False)
    ps = core.charging()[0]
    st = ps.clear(pid, cid, purpose, stack)
    return {"status": st}, (((E_PROFILES, None),) if st == "Accepted" else ())


def answer_composite(core, p):
    cid = _int(p, "connectorId", True)
    duration = _int(p, "duration", True)
    unit = _enum(p, "chargingRateUnit", UNITS, False)
    if cid not in (0, core.connector) or duration <= 0:
        return {"status": "Rejected"}, ()
    ps, now, max_ma = core.charging()
    tx = core.open_tx()[0] if core.open_tx is not None and cid else None
    start = core.tx_start() if tx is not None else None
    from loadpilot.ocpp.tx import iso
    sch = ps.composite(now, min(duration, 7 * _DAY), unit == "W", tx, start, max_ma)
    sch["startSchedule"] = iso(now)
    return {"status": "Accepted", "connectorId": cid, "scheduleStart": iso(now), "chargingSchedule": sch}, ()


def check_remote(cp, connector):
    """RemoteStartTransaction's chargingProfile: a valid TxProfile without a transactionId (the transaction does
    not exist yet)."""
    try:
        x = Profile(connector, cp, 0)
    except FrameError:
        return False
    return x.purpose == _TX and x.txid is None and x.problem(connector, 1) is None
