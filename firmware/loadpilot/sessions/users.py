# The user store (reference/users.md, docs/users.md): users with a secret user ID (their PIN), a name, the
# wallboxes they may charge at, a priority and up to MAX_RFIDS RFIDs/PINs of their own. The one truth of which
# wallbox needs a user: a wallbox named in any user's dev_ids charges only for those users (sessions/auth.py).
# On flash users.json, the document's user objects as a JSON array, rewritten whole to users.new and renamed over
# the old file (littlefs renames atomically: a power cut leaves the old or the new file); the last user deleted
# removes the file. Imported only when users.json exists or a user command is given: a box without users
# imports nothing of this. IDs are in the whitelist's one normal form (sessions/ids.py); a user ID is digits.
# In RAM a user is a list [id, name, display, dev_ids, prio, rfids] (a list of six costs less than a dict), an
# RFID a tuple (id, name, ac_auth, ac_ovch, used_phases). Rights (who may change what) are api/user_cmd.py's.
import json
import os
from micropython import const

from loadpilot.sessions import ids

MAX_USERS = const(32)
MAX_RFIDS = const(8)      # per user
MAX_NAME = const(32)      # characters of a user's or an RFID's name
MAX_DEV_IDS = const(25)   # codes: at most 25 wallboxes
PRIO_MAX = const(10)      # as a device's "prio" (config/schema.py)
NEW_ID_DIGITS = const(14)  # get_new_user_id: 14 digits = 7 bytes, a valid ID (ids.py), 10^14 to guess
MAINTAIN = "maintain"     # priority: the wallbox's own applies
# list indexes of a user
ID = const(0)
NAME = const(1)
DISPLAY = const(2)
DEV_IDS = const(3)
PRIO = const(4)
RFIDS = const(5)
_KEYS = ("id", "name", "display", "dev_ids", "priority", "rfids", "charging_rules")
_RFID_KEYS = ("id", "name", "ac_auth", "ac_ovch", "used_phases")


class UsersError(ValueError):
    pass


def user_id(text):
    """The normal form of a user ID: digits only (a PIN), 8, 14 or 20 of them (ids.py's rule)."""
    if not isinstance(text, str) or not text.strip().isdigit():
        raise UsersError("a user ID is 8, 14 or 20 digits")
    try:
        return ids.normal(text)
    except ids.IdError:
        raise UsersError("a user ID is 8, 14 or 20 digits")


def _name(v, what):
    if not isinstance(v, str) or len(v) > MAX_NAME:
        raise UsersError("%s must be text of at most %d characters" % (what, MAX_NAME))
    for c in v:
        if c < " " or c == "\x7f":
            raise UsersError("%s must not hold control characters" % what)
    return v


def _bool(v, what):
    if not isinstance(v, bool):
        raise UsersError("%s must be true or false" % what)
    return v


def _rfid(obj, i):
    what = "rfids[%d]" % i
    if not isinstance(obj, dict):
        raise UsersError("%s: expected an object" % what)
    for k in obj:
        if k not in _RFID_KEYS:
            raise UsersError("%s.%s: unknown key" % (what, k))
    try:
        rid = ids.normal(obj.get("id", ""))
    except ids.IdError as e:
        raise UsersError("%s.id: %s" % (what, e))
    ph = obj.get("used_phases", 0)
    if isinstance(ph, bool) or not isinstance(ph, int) or not 0 <= ph <= 7:
        raise UsersError("%s.used_phases must be 0..7 (0 = keep, bit 0 L1, bit 1 L2, bit 2 L3)" % what)
    return (rid, _name(obj.get("name", ""), what + ".name"), _bool(obj.get("ac_auth", True), what + ".ac_auth"),
            _bool(obj.get("ac_ovch", False), what + ".ac_ovch"), ph)


def parse(obj, old=None, wallboxes=None):
    """A user object (the document's form) -> a user list, fields missing from obj taken from old (an update).
    wallboxes: the dev_ids a user may be assigned to (None: not checked). UsersError names the bad field."""
    if not isinstance(obj, dict):
        raise UsersError("expected a user object")
    for k in obj:
        if k not in _KEYS:
            raise UsersError("%s: unknown key" % k)
    u = list(old) if old is not None else [None, "", True, (), None, ()]
    u[ID] = user_id(obj["id"]) if "id" in obj else u[ID]
    if u[ID] is None:
        raise UsersError("id: missing (get one with get_new_user_id)")
    if "name" in obj:
        u[NAME] = _name(obj["name"], "name")
    if "display" in obj:
        u[DISPLAY] = _bool(obj["display"], "display")
    if "dev_ids" in obj:
        d = obj["dev_ids"]
        if not isinstance(d, list) or len(d) > MAX_DEV_IDS:
            raise UsersError("dev_ids must be a list of at most %d wallboxes" % MAX_DEV_IDS)
        for x in d:
            if not isinstance(x, str) or x[:1] != "E" or (wallboxes is not None and x not in wallboxes):
                raise UsersError("dev_ids: %r is not a configured wallbox" % (x,))
        u[DEV_IDS] = tuple(sorted(set(d)))
    if "priority" in obj:
        p = obj["priority"]
        if p == MAINTAIN or p is None:
            u[PRIO] = None
        elif isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= PRIO_MAX:
            raise UsersError("priority must be \"maintain\" or 1..%d" % PRIO_MAX)
        else:
            u[PRIO] = p
    if "rfids" in obj:
        r = obj["rfids"]
        if not isinstance(r, list) or len(r) > MAX_RFIDS:
            raise UsersError("rfids must be a list of at most %d RFIDs/PINs" % MAX_RFIDS)
        rs = tuple(_rfid(r[i], i) for i in range(len(r)))
        for i in range(len(rs)):
            if rs[i][0] == u[ID] or any(rs[j][0] == rs[i][0] for j in range(i)):
                raise UsersError("rfids[%d].id: given twice" % i)
        u[RFIDS] = rs
    if obj.get("charging_rules"):
        raise UsersError("charging_rules: per-user charging rules are not supported (give [] or leave it out)")
    return u


def view(u, hide_id=False):
    """The document's user object; hide_id: the user ID as "***" (an answer published on MQTT)."""
    return {"id": "***" if hide_id else u[ID], "name": u[NAME], "display": u[DISPLAY], "dev_ids": list(u[DEV_IDS]),
            "priority": MAINTAIN if u[PRIO] is None else u[PRIO],
            "rfids": [{"id": r[0], "name": r[1], "ac_auth": r[2], "ac_ovch": r[3], "used_phases": r[4]}
                      for r in u[RFIDS]],
            "charging_rules": []}


class Users:
    def __init__(self, root, log):
        self.path = root + "/users.json" if root else "users.json"
        self.log = log
        self.users = []
        self.damaged = False  # users.json could not be read: changes are refused, so nothing overwrites it
        self.on_change = None  # called after a change reached flash (the authorizer re-reads the assignment)
        self._load()

    def __len__(self):
        return len(self.users)

    # ---- lookup (IDs in normal form)

    def get(self, uid):
        for u in self.users:
            if u[ID] == uid:
                return u
        return None

    def find(self, norm):
        """(user, rfid tuple or None for the user ID itself) holding norm, or None."""
        for u in self.users:
            if u[ID] == norm:
                return u, None
            for r in u[RFIDS]:
                if r[0] == norm:
                    return u, r
        return None

    def boxes(self):
        """The wallboxes with at least one user: they charge only for their users."""
        out = []
        for u in self.users:
            for d in u[DEV_IDS]:
                if d not in out:
                    out.append(d)
        return tuple(out)

    def authorizes(self, dev_id, norm):
        """The user whose ID (or RFID with ac_auth) norm is, if that user may charge at dev_id; else None."""
        f = self.find(norm)
        if f is None or dev_id not in f[0][DEV_IDS] or (f[1] is not None and not f[1][2]):
            return None
        return f[0]

    # ---- changes (flash first, then RAM)

    def set(self, obj, old=None, wallboxes=None):
        """Create (old None) or update user old from obj. -> the new user list."""
        self._writable()
        u = parse(obj, old, wallboxes)
        if old is None and len(self.users) >= MAX_USERS:
            raise UsersError("the user list is full (%d users)" % MAX_USERS)
        for other in self.users:
            if other is old:
                continue
            # the same answer whichever ID is taken, and the caller counts it as a guess (api/user_cmd.py)
            taken = [other[ID]] + [r[0] for r in other[RFIDS]]
            if u[ID] in taken or any(r[0] in taken for r in u[RFIDS]):
                raise UsersError("an ID or RFID given is already in use")
        new = [u if x is old else x for x in self.users] if old is not None else self.users + [u]  # order kept
        self._save(new)
        self.users = new
        self._changed()
        return u

    def delete(self, u):
        self._writable()
        new = [x for x in self.users if x is not u]
        self._save(new)
        self.users = new
        self._changed()

    def new_id(self):
        """A fresh user ID: NEW_ID_DIGITS random digits (the hardware RNG), unique among users and their RFIDs."""
        while True:
            try:
                raw = os.urandom(8)
                n = 0
                for b in raw:
                    n = (n << 8) | b
            except (AttributeError, OSError):  # a port without urandom: the seeded generator
                import random
                n = random.getrandbits(30) << 30 | random.getrandbits(30)
            low = 10 ** (NEW_ID_DIGITS - 1)
            uid = "%d" % (low + n % (9 * low))  # no leading 0: the ID reads the same as a number
            if self.find(uid) is None:
                return uid

    def _writable(self):
        if self.damaged:
            raise UsersError("users.json could not be read: fix or remove it first (nothing is changed)")

    def _changed(self):
        if self.on_change is not None:
            self.on_change()

    def _save(self, users):
        if not users:
            try:
                os.remove(self.path)
            except OSError as e:
                if e.args and e.args[0] != 2:  # ENOENT: there was no file
                    raise
            return
        new = self.path[:-5] + ".new"
        with open(new, "w") as f:  # one user object at a time: the file never exists in RAM as one text
            f.write("[")
            for i in range(len(users)):
                if i:
                    f.write(",\n")
                json.dump(view(users[i]), f)
            f.write("]\n")
        os.rename(new, self.path)

    def _load(self):
        try:
            f = open(self.path)
        except OSError:
            return
        try:
            with f:
                objs = json.load(f)
            if not isinstance(objs, list) or len(objs) > MAX_USERS:
                raise UsersError("not a list of at most %d users" % MAX_USERS)
            users = []
            for o in objs:
                users.append(parse(o))
            self.users = users
        except (ValueError, OSError) as e:  # UsersError is a ValueError
            self.damaged = True
            self.log.error("users", "users.json unreadable, user assignments are not applied until it is fixed: %s" % e)
