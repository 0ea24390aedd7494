# Authorization of charging sessions (seed: AUTHORIZATION; docs/authorization.md). Per wallbox it keeps what
# the manager needs to know: may the car there charge. The manager cycle reports each wallbox's state
# (observe) and asks allowed(); an unauthorized car gets 0 with reason "auth". IDs arrive from enter_rfid
# (present / present_any) and from a wallbox's own reader (HTTP-input "rfid") and are checked against the
# local whitelist. Free charging, or a wallbox that does not require authorization, authorizes at plug-in.
# A wallbox that a user is assigned to (sessions/users.py) requires authorization too, and charges only for its
# users: their user ID (PIN) or one of their RFIDs with ac_auth; any other ID, whitelisted or not, is refused.
# Imported only when free charging is on, a wallbox requires authorization or users exist (app.py): off costs
# nothing.
import time

from loadpilot.codes import (AUTH_AUTHORIZED, AUTH_DOUBT, AUTH_FREE, AUTH_NONE, AUTH_OPEN, AUTH_STATES,
                             AUTH_TIMEOUT, AUTH_USER, AUTH_WAITING, ST_WAITING, plugged)
from loadpilot.sessions import ids


class AuthError(ValueError):
    pass


class _Slot:
    """One wallbox's authorization: state (codes.AUTH_*), who and how, and since when (ticks_ms)."""

    def __init__(self):
        self.state = AUTH_NONE
        self.plugged = False
        self.id_tag = None
        self.method = None
        self.since_ms = 0  # plug-in (waiting) or pre-authorization
        self.refused = None  # the last ID refused here (logged once, not on every push)
        self.prio = None  # the priority of the user charging here (reference/users.md), None: the wallbox's
        self.shown = None  # the name on the tile while a user charges here (their "display" on), else None
        self.hide = False  # the charging user's "show" is off: the tile is not shown to other users
        self.card = None  # the card the wallbox's reader reports now (a new one is a new presentation)
        self.plugins = None  # the box's plug-in count when its car was seen plugged in (site.DeviceState)


class Authorizer:
    def __init__(self, store, site, log, whitelist):
        self.store = store
        self.site = site
        self.log = log
        self.whitelist = whitelist  # callable -> sessions.whitelist.Whitelist, loaded on first use
        self.slots = {}  # dev_id -> _Slot, made when a car is first seen or an ID is presented
        self.on_change = None  # called when a wallbox became authorized: the manager decides at once
        self.users = None  # sessions/users.Users while users exist (app.py): their wallboxes charge only for them
        self.user_boxes = ()
        self.remote = None  # (dev_id, norm) -> "asking" | a method | None: the OCPP backend for IDs the
        #                     whitelist does not know (ocpp/service.py check_id), while OCPP is on
        self._apply_config()
        store.subscribe(self._changed)

    def _changed(self, key):
        if key in ("devices", "free_charging", "free_charging_tag", "auth_if_in_doubt",
                   "vehicle_connection_timeout_s"):
            self._apply_config()

    def _apply_config(self):
        s = self.store
        self.free = s.get("free_charging")
        self.free_tag = s.get("free_charging_tag")
        self.doubt = s.get("auth_if_in_doubt")
        self.timeout_ms = s.get("vehicle_connection_timeout_s") * 1000
        req = [d["dev_id"] for d in s.peek("devices") if d["dev_id"][0] == "E" and d.get("auth_required")]
        self.user_boxes = self.users.boxes() if self.users is not None else ()
        for d in self.user_boxes:
            if d not in req:
                req.append(d)
        self.required = tuple(req)

    def users_changed(self):
        """The user store changed (a wallbox gained or lost its users): which boxes require authorization."""
        self._apply_config()

    def requires(self, dev_id):
        return not self.free and dev_id in self.required

    # ---- the manager cycle (every cycle, every wallbox: allocates nothing but at plug-in)

    def allowed(self, dev_id):
        """May a car at dev_id charge (also before it is plugged in: the start limit is 0 otherwise)."""
        if not self.requires(dev_id):
            return True
        s = self.slots.get(dev_id)
        return s is not None and s.state == AUTH_AUTHORIZED

    def observe(self, dev_id, status, now, plugins=None):
        """The wallbox's state (codes.ST_*) and its plug-in count (site.DeviceState.plugins; None: not known).
        Unplugged (1) ends its authorization; so does a changed plug-in count (another car was plugged in since
        the last look, the unplug fell between two looks); an error or an offline box keeps it (a comm glitch is
        not an unplug). -> True when allowed(dev_id) went from yes to no."""
        s = self.slots.get(dev_id)
        was = False
        if s is not None and s.plugged and plugins != s.plugins and plugins is not None and \
                s.plugins is not None and plugged(status):
            self.log.info("auth", "%s: another car was plugged in since the last look" % dev_id)
            was = self._left(dev_id, s)  # that car left: the one plugged in now starts from nothing
            s = None
        if status == ST_WAITING:
            if s is None:
                return False
            if s.plugged:
                return self._left(dev_id, s)
            if s.state == AUTH_AUTHORIZED and time.ticks_diff(now, s.since_ms) >= self.timeout_ms:
                self.log.info("auth", "%s: no car within %d s: pre-authorization ended"
                              % (dev_id, self.timeout_ms // 1000))
                del self.slots[dev_id]
                return self.requires(dev_id)
            return False
        if not plugged(status):
            return False
        if s is None:
            s = self.slots[dev_id] = _Slot()
        if not s.plugged:
            s.plugged = True
            s.plugins = plugins
            if s.state == AUTH_AUTHORIZED:  # pre-authorized: this car is the one
                self.log.info("auth", "%s: car plugged in, pre-authorized (%s)" % (dev_id, s.method))
            elif self.requires(dev_id):
                s.state = AUTH_WAITING
                s.since_ms = now
                self.log.info("auth", "%s: car plugged in, waiting for authorization" % dev_id)
            else:
                self._grant(dev_id, s, self.free_tag, AUTH_FREE if self.free else AUTH_OPEN, now)
        elif s.state != AUTH_AUTHORIZED:
            if not self.requires(dev_id):  # free charging switched on (or the box's requirement off) meanwhile
                self._grant(dev_id, s, self.free_tag, AUTH_FREE if self.free else AUTH_OPEN, now)
            elif s.state == AUTH_WAITING and time.ticks_diff(now, s.since_ms) >= self.timeout_ms:
                s.state = AUTH_TIMEOUT
                self.log.warn("auth", "%s: no authorization within the vehicle connection timeout (%d s)"
                              % (dev_id, self.timeout_ms // 1000))
        return was

    def _left(self, dev_id, s):
        """The car at dev_id left: its authorization (or its wait for one) ends. -> True if it was allowed."""
        if s.state != AUTH_AUTHORIZED:
            self.log.info("auth", "%s: car unplugged before authorization" % dev_id)
        del self.slots[dev_id]
        return s.state == AUTH_AUTHORIZED and self.requires(dev_id)

    def sweep(self, site, now):
        """Between manager cycles (every 100 ms): the boxes that require authorization, observed at once. -> True
        when one may no longer charge (its car left): the manager must decide now, so that the set-point of an
        authorized car never reaches the next car plugged in before the cycle ends."""
        moved = False
        for dev_id in self.required:
            d = site.device(dev_id)
            if d is not None and self.observe(dev_id, d.status, now, d.plugins):
                moved = True
        return moved

    def _grant(self, dev_id, s, id_tag, method, now, prio=None, shown=None, hide=False):
        s.state = AUTH_AUTHORIZED
        s.shown = shown
        s.hide = hide
        s.id_tag = id_tag
        s.method = method
        s.refused = None
        s.prio = prio
        if not s.plugged:
            s.since_ms = now
        if method not in (AUTH_FREE, AUTH_OPEN):
            self.log.info("auth", "%s: authorized (%s)%s" % (dev_id, method, "" if s.plugged else
                                                             ", waiting for the car"))
        if self.on_change is not None:
            self.on_change()

    # ---- readers

    def auth_of(self, dev_id):
        """(id_tag, method) of the session at dev_id, or None while it is not authorized (or no car)."""
        s = self.slots.get(dev_id)
        if s is None or not s.plugged or s.state != AUTH_AUTHORIZED:
            return None
        d = self.site.device(dev_id)
        if d is not None and s.plugins is not None and d.plugins != s.plugins:
            return None  # another car came since the last look: the session asking is not this one's
        return s.id_tag, s.method

    def prio_of(self, dev_id):
        """The priority of the user authorized at dev_id while that user charges, or None (the wallbox's own)."""
        s = self.slots.get(dev_id)
        return s.prio if s is not None and s.state == AUTH_AUTHORIZED else None

    def shown_of(self, dev_id):
        """(the name a tile shows or None, the tile hidden from other users) of the session at dev_id."""
        s = self.slots.get(dev_id)
        if s is None or not s.plugged or s.state != AUTH_AUTHORIZED:
            return None, False
        return s.shown, s.hide

    def card_gone(self, dev_id):
        """The wallbox's reader reports no card: the next one it reports is a new presentation."""
        s = self.slots.get(dev_id)
        if s is not None:
            s.card = None

    def state_name(self, dev_id):
        s = self.slots.get(dev_id)
        return AUTH_STATES[s.state] if s is not None else AUTH_STATES[AUTH_NONE]

    # ---- IDs presented (enter_rfid, a wallbox's reader)

    def check(self, norm):
        """-> AUTH_DOUBT if the ID could not be checked and doubt allows it, None if it is on the whitelist;
        AuthError otherwise."""
        try:
            wl = self.whitelist()
        except OSError as e:
            wl = None
            self.log.error("auth", "whitelist unreadable: %s" % e)
        if wl is not None and wl.contains(norm):
            return None
        if wl is None or wl.damaged:
            if self.doubt:
                return AUTH_DOUBT
            raise AuthError("ID %s could not be checked (whitelist damaged) and \"if in doubt allow charging\" "
                            "is off" % norm)
        raise AuthError("ID %s is not on the whitelist: charging stays locked" % self._shown(norm))

    def _shown(self, norm):
        """norm for a message, unless it is a user ID (a secret: never in a log or an answer)."""
        us = self.users
        if us is not None:
            if us.number(norm) is not None:
                return "(a user ID)"
        return norm

    def _user(self, dev_id, s, norm, method, now):
        """An ID at a wallbox with users: the user's ID (method "user", the session shows the user's name, never
        the ID) or one of the user's RFIDs with ac_auth; anything else is refused. -> the idTag recorded."""
        us = self.users
        a = us.authorizes(dev_id, norm)
        if a is None:
            if s is None or s.refused != norm:
                self.log.warn("auth", "%s: an ID that is no user's of this wallbox was refused" % dev_id)
            if s is not None:
                s.refused = norm
            raise AuthError("this ID is not one of %s's users: charging stays locked" % dev_id)
        if s is None:
            s = self.slots[dev_id] = _Slot()
        n, pin = a
        tag = norm
        if pin:  # the user's name, at most the journal's 20 idTag bytes, cut between characters
            tag = us.name(n) or "user"
            while len(tag.encode()) > 20:
                tag = tag[:-1]
        shown = None
        if us.display(n):  # an RFID's own name replaces the user's on the tile (reference/users.md)
            shown = us.name(n)
            if not pin:
                shown = us.read(n)["rfids"][us.find(norm)[1]]["name"] or shown
        self._grant(dev_id, s, tag, AUTH_USER if pin else method, now, us.prio(n), shown or None, not us.show(n))
        return tag, s

    def present(self, dev_id, text, method, now=None):
        """An ID for dev_id. A waiting car is authorized; with no car there, the ID pre-authorizes the next
        car plugged in within the vehicle connection timeout. -> (normal form, "authorized" | "pre-authorized"
        | "already authorized"). IdError/AuthError: refused, nothing changed."""
        now = time.ticks_ms() if now is None else now
        norm = ids.normal(text)
        st = self.site.device(dev_id)
        if st is not None:
            self.observe(dev_id, st.status, now, st.plugins)
        s = self.slots.get(dev_id)
        if s is not None and s.state == AUTH_AUTHORIZED and s.plugged:
            return s.id_tag, "already authorized"
        if dev_id in self.user_boxes and self.requires(dev_id):
            tag, s = self._user(dev_id, s, norm, method, now)
            return tag, "authorized" if s.plugged else "pre-authorized"
        try:
            how = self.check(norm)
        except AuthError as e:
            r = self.remote(dev_id, norm) if self.remote is not None else None
            if r == "asking":  # the backend's answer grants it (grant) or not, in a moment
                return norm, "asking the backend"
            if r is None:
                if s is None or s.refused != norm:
                    self.log.warn("auth", "%s: %s" % (dev_id, e))  # e never holds a user ID (_shown)
                if s is not None:
                    s.refused = norm
                raise
            how = r
        if s is None:
            s = self.slots[dev_id] = _Slot()
        self._grant(dev_id, s, norm, how or method, now)
        return norm, "authorized" if s.plugged else "pre-authorized"

    def grant(self, dev_id, id_tag, method, now=None):
        """An ID another authority accepted (the OCPP backend's RemoteStartTransaction): no whitelist check. A
        waiting car is authorized; with no car there, the next one within the vehicle connection timeout."""
        now = time.ticks_ms() if now is None else now
        st = self.site.device(dev_id)
        if st is not None:
            self.observe(dev_id, st.status, now, st.plugins)
        s = self.slots.get(dev_id)
        if s is None:
            s = self.slots[dev_id] = _Slot()
        self._grant(dev_id, s, id_tag, method, now)

    def waiting(self, boxes=None):
        """The wallbox whose car waits for authorization and was plugged in most recently, or None. A car
        past the vehicle connection timeout is no candidate (it is reached with dev_id). boxes: only these
        (a user's); None: the boxes without users."""
        best = None
        for dev_id in self.slots:
            s = self.slots[dev_id]
            if s.plugged and s.state == AUTH_WAITING and self.requires(dev_id) and \
                    (dev_id in boxes if boxes is not None else dev_id not in self.user_boxes):
                if best is None or time.ticks_diff(s.since_ms, self.slots[best].since_ms) > 0:
                    best = dev_id
        return best

    def present_any(self, text, method, now=None):
        """enter_rfid without a device: the ID goes to the only waiting car, with several to the one plugged in
        most recently. -> (dev_id, normal form, result)."""
        now = time.ticks_ms() if now is None else now
        norm = ids.normal(text)
        us = self.users
        f = us.find(norm) if us is not None else None
        if f is not None:  # a user's ID or RFID: the car waiting at one of the user's wallboxes
            boxes = us.dev_ids(f[0])
            if not f[2]:
                raise AuthError("this RFID does not authorize charging (ac_auth is off)")
        else:
            boxes = None
            self.check(norm)  # an unknown ID is refused before any car is chosen
        dev_id = self.waiting(boxes)
        if dev_id is None:
            late = [d for d in self.slots if self.slots[d].state == AUTH_TIMEOUT]
            raise AuthError("no car is waiting for authorization%s" % (
                " (%s waited past the vehicle connection timeout: give dev_id)" % ", ".join(late) if late else ""))
        tag, result = self.present(dev_id, norm, method, now)
        return dev_id, tag, result
