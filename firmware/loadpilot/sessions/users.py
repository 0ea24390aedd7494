# The user store (reference/users.md, docs/users.md): users with a secret user ID (their PIN), a name, the
# wallboxes they may charge at (dev_ids), a priority and up to MAX_RFIDS RFIDs/PINs of their own. The one truth of
# which wallbox needs a user: a wallbox named in any user's dev_ids charges only for its users (sessions/auth.py).
# On flash users.jsonl: one user per line, the document's user object. A change writes users.new (the unchanged
# lines copied as they are) and renames it over the old file: littlefs renames atomically, so a power cut leaves
# the old or the new file; the last user deleted removes the file. Imported only when the file exists or a user
# command is given: a box without users imports nothing of this.
# In RAM only what charging needs: an index of every ID (ids.record, 11 bytes, plus user, RFID and ac_auth: 14
# bytes per ID) and per user its wallboxes, priority and name. The rest (RFID names and functions, display) stays
# on flash and is read one line at a time when a command asks. IDs are in the whitelist's normal form
# (sessions/ids.py); a user ID is digits. Rights (who may change what) are api/user_cmd.py's.
import json
import os
from micropython import const

from loadpilot.sessions import ids

MAX_USERS = const(32)
MAX_RFIDS = const(8)      # per user
MAX_NAME = const(32)      # characters of a user's or an RFID's name
MAX_DEV_IDS = const(25)   # at most 25 wallboxes
MAX_LINE = const(2048)    # one user on flash (8 RFIDs with long names are about 1.3 KB)
PRIO_MAX = const(10)      # as a device's "prio" (config/schema.py)
NEW_ID_DIGITS = const(14)  # get_new_user_id: 14 digits = 7 bytes, a valid ID (ids.py), 9 x 10^13 to guess
MAINTAIN = "maintain"     # priority: the wallbox's own applies
_ENTRY = const(14)        # index entry: record (11), user number, RFID number (0xFF: the user ID), flags
_USER_ID = const(0xFF)
_AC_AUTH = const(1)
_FN = const(2)            # index flag: the RFID has functions (ac_ovch or used_phases): api/rfid_fn.py reads them
_DISPLAY = const(1)       # meta flags: display (the name on the wallbox's tile), show (the tile seen by other users)
_SHOW = const(2)
PHASES = (0, 1, 2, 4, 7)  # used_phases a card may set: keep, one phase (L1, L2 or L3), all three (1p/3p manager)
_KEYS = ("id", "name", "display", "show", "dev_ids", "priority", "rfids", "charging_rules")
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


def _rfid(obj, i, strict):
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
    if strict and ph not in PHASES:  # a new value only: a file written before this rule still loads
        raise UsersError("%s.used_phases: the load manager knows 1 phase or 3 phases: give 0, 1, 2, 4 or 7" % what)
    return {"id": rid, "name": _name(obj.get("name", ""), what + ".name"),
            "ac_auth": _bool(obj.get("ac_auth", True), what + ".ac_auth"),
            "ac_ovch": _bool(obj.get("ac_ovch", False), what + ".ac_ovch"), "used_phases": ph}


def parse(obj, old=None, wallboxes=None, strict=False):
    """A user object (the document's form) -> the checked user object, fields missing from obj taken from old (an
    update). wallboxes: the dev_ids a user may be assigned to (None: not checked). UsersError names the field."""
    if not isinstance(obj, dict):
        raise UsersError("expected a user object")
    for k in obj:
        if k not in _KEYS:
            raise UsersError("%s: unknown key" % k)
    u = {"id": None, "name": "", "display": True, "show": True, "dev_ids": [], "priority": MAINTAIN, "rfids": [],
         "charging_rules": []}
    if old is not None:
        u.update(old)
    if "id" in obj:
        u["id"] = user_id(obj["id"])
    if u["id"] is None:
        raise UsersError("id: missing (get one with get_new_user_id)")
    if "name" in obj:
        u["name"] = _name(obj["name"], "name")
    for k in ("display", "show"):
        if k in obj:
            u[k] = _bool(obj[k], k)
    if "dev_ids" in obj:
        d = obj["dev_ids"]
        if not isinstance(d, list) or len(d) > MAX_DEV_IDS:
            raise UsersError("dev_ids must be a list of at most %d wallboxes" % MAX_DEV_IDS)
        for x in d:
            if not isinstance(x, str) or x[:1] != "E" or (wallboxes is not None and x not in wallboxes):
                raise UsersError("dev_ids: %r is not a configured wallbox" % (x,))
        u["dev_ids"] = sorted(set(d))
    if "priority" in obj:
        p = obj["priority"]
        if p is None:
            p = MAINTAIN
        if p != MAINTAIN and (isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= PRIO_MAX):
            raise UsersError("priority must be \"maintain\" or 1..%d" % PRIO_MAX)
        u["priority"] = p
    if "rfids" in obj:
        r = obj["rfids"]
        if not isinstance(r, list) or len(r) > MAX_RFIDS:
            raise UsersError("rfids must be a list of at most %d RFIDs/PINs" % MAX_RFIDS)
        rs = [_rfid(r[i], i, strict) for i in range(len(r))]
        for i in range(len(rs)):
            if rs[i]["id"] == u["id"] or any(rs[j]["id"] == rs[i]["id"] for j in range(i)):
                raise UsersError("rfids[%d].id: given twice" % i)
        u["rfids"] = rs
    if obj.get("charging_rules"):
        raise UsersError("charging_rules: per-user charging rules are not supported (give [] or leave it out)")
    return u


class Users:
    def __init__(self, root, log):
        self.path = root + "/users.jsonl" if root else "users.jsonl"
        self.log = log
        self.index = bytearray()  # _ENTRY bytes per ID
        self.meta = []  # per user (line): (dev_ids tuple, priority or None, name, _DISPLAY | _SHOW flags)
        self.damaged = False  # the file could not be read: changes are refused, so nothing overwrites it
        self.on_change = None  # called after a change reached flash (the authorizer re-reads the assignment)
        self._load()

    def __len__(self):
        return len(self.meta)

    # ---- lookup (IDs in normal form)

    def _at(self, norm):
        """The offset of the ID norm's entry in the index, or -1."""
        try:
            rec = ids.record(norm)
        except (ValueError, IndexError):
            return -1
        x = self.index
        for i in range(0, len(x), _ENTRY):
            if x[i:i + 11] == rec:
                return i
        return -1

    def find(self, norm):
        """(user number, RFID number or None for the user ID itself, may authorize) of the ID norm, or None."""
        i = self._at(norm)
        if i < 0:
            return None
        x = self.index
        r = x[i + 12]
        return x[i + 11], (None if r == _USER_ID else r), bool(x[i + 13] & _AC_AUTH)

    def dev_ids(self, n):
        return self.meta[n][0]

    def prio(self, n):
        """The user's priority, None for "maintain"."""
        return self.meta[n][1]

    def name(self, n):
        return self.meta[n][2]

    def display(self, n):
        """The user's name may be shown on the tile of the wallbox they charge at."""
        return bool(self.meta[n][3] & _DISPLAY)

    def show(self, n):
        """The tile of the wallbox this user charges at is shown to other users."""
        return bool(self.meta[n][3] & _SHOW)

    def has_functions(self, norm):
        """(user number, RFID number) of an RFID of a user with ac_ovch or used_phases, else None."""
        i = self._at(norm)
        x = self.index
        return (x[i + 11], x[i + 12]) if i >= 0 and x[i + 13] & _FN else None

    def boxes(self):
        """The wallboxes with at least one user: they charge only for their users."""
        out = []
        for m in self.meta:
            for d in m[0]:
                if d not in out:
                    out.append(d)
        return tuple(out)

    def authorizes(self, dev_id, norm):
        """-> (user number, is the user ID) if norm is the ID or an RFID with ac_auth of a user of dev_id, else None."""
        f = self.find(norm)
        if f is None or dev_id not in self.meta[f[0]][0] or not f[2]:
            return None
        return f[0], f[1] is None

    def number(self, uid):
        """The user number of user ID uid (normal form), or None (an RFID is no user ID)."""
        f = self.find(uid)
        return f[0] if f is not None and f[1] is None else None

    # ---- reading from flash, one user at a time

    def lines(self):
        """Each user's line (bytes, without the newline), in order."""
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        with f:
            while True:
                line = f.readline()
                if not line:
                    return
                yield line.rstrip(b"\r\n")

    def read(self, n):
        """User number n as the document's object."""
        i = 0
        for line in self.lines():
            if i == n:
                return json.loads(line)
            i += 1
        raise UsersError("user %d not on flash" % n)

    # ---- changes (flash first, then RAM)

    def set(self, obj, n=None, wallboxes=None):
        """Create (n None) or update user number n from obj. -> the user number."""
        self._writable()
        u = parse(obj, self.read(n) if n is not None else None, wallboxes, True)
        if n is None and len(self.meta) >= MAX_USERS:
            raise UsersError("the user list is full (%d users)" % MAX_USERS)
        for x in [u["id"]] + [r["id"] for r in u["rfids"]]:
            f = self.find(x)
            # the same answer whichever ID is taken, and the caller counts it as a guess (api/user_cmd.py)
            if f is not None and f[0] != n:
                raise UsersError("an ID or RFID given is already in use")
        line = json.dumps(u).encode()
        if len(line) > MAX_LINE:
            raise UsersError("the user takes more than %d bytes" % MAX_LINE)
        self._save(n, line)
        return len(self.meta) - 1 if n is None else n

    def delete(self, n):
        self._writable()
        self._save(n, None)

    def new_id(self):
        """A fresh user ID: NEW_ID_DIGITS random digits (the hardware RNG), unique among users and their RFIDs."""
        low = 10 ** (NEW_ID_DIGITS - 1)
        while True:
            try:
                n = 0
                for b in os.urandom(8):
                    n = (n << 8) | b
            except (AttributeError, OSError):  # a port without urandom: the seeded generator
                import random
                n = random.getrandbits(30) << 30 | random.getrandbits(30)
            uid = "%d" % (low + n % (9 * low))  # no leading 0: the ID reads the same as a number
            if self.find(uid) is None:
                return uid

    def _writable(self):
        if self.damaged:
            raise UsersError("users.jsonl could not be read: fix or remove it first (nothing is changed)")

    def _save(self, n, line):
        """The file with user n's line replaced by line (n None: line appended; line None: user n deleted), written
        to users.new and renamed over the old one; then the index is read back from it."""
        count = len(self.meta) + (1 if n is None else 0) - (1 if line is None else 0)
        if count == 0:
            try:
                os.remove(self.path)
            except OSError as e:
                if e.args and e.args[0] != 2:  # ENOENT: there was no file
                    raise
        else:
            new = self.path[:-6] + ".new"
            with open(new, "wb") as f:
                i = 0
                for old in self.lines():
                    if i != n:
                        f.write(old)
                        f.write(b"\n")
                    elif line is not None:
                        f.write(line)
                        f.write(b"\n")
                    i += 1
                if n is None:
                    f.write(line)
                    f.write(b"\n")
            os.rename(new, self.path)
        self._load()
        if self.on_change is not None:
            self.on_change()

    def _load(self):
        index = bytearray()
        meta = []
        try:
            for line in self.lines():
                if len(meta) >= MAX_USERS or len(line) > MAX_LINE:
                    raise UsersError("more than %d users or a line over %d bytes" % (MAX_USERS, MAX_LINE))
                u = parse(json.loads(line))
                n = len(meta)
                for k in range(-1, len(u["rfids"])):
                    r = u["rfids"][k] if k >= 0 else None
                    index.extend(ids.record(r["id"] if r else u["id"]))
                    index.append(n)
                    index.append(k if r else _USER_ID)
                    index.append((_AC_AUTH if r is None or r["ac_auth"] else 0) |
                                 (_FN if r is not None and (r["ac_ovch"] or r["used_phases"]) else 0))
                p = u["priority"]
                meta.append((tuple(u["dev_ids"]), None if p == MAINTAIN else p, u["name"],
                             (_DISPLAY if u["display"] else 0) | (_SHOW if u["show"] else 0)))
        except (ValueError, OSError) as e:  # UsersError is a ValueError, and so is a JSON error
            self.damaged = True
            self.log.error("users", "users.jsonl unreadable, user assignments are not applied until it is fixed: "
                                    "line %d: %s" % (len(meta) + 1, e))
            return
        self.index = index
        self.meta = meta
        self.damaged = False


class UsersStream:
    """get_users as a stream (api/user_cmd.py): "[" + each user's line + "]", read from flash one line at a time,
    so 32 users with 8 RFIDs each (about 27 KB) never exist in RAM at once. hide_id: every "id" of a user as "***"
    (an MQTT answer is published). length() counts the bytes in a first pass; parts() yields exactly as many (a
    change in between pads with spaces or cuts, like the session CSV export)."""

    content_type = "application/json"

    def __init__(self, users, hide_id):
        self.users = users
        self.hide = hide_id
        self._length = None

    def _parts(self):
        yield b"["
        first = True
        for line in self.users.lines():
            if not first:
                yield b","
            first = False
            if self.hide:
                u = json.loads(line)
                u["id"] = "***"
                line = json.dumps(u).encode()
            yield line
        yield b"]"

    def length(self):
        if self._length is None:
            n = 0
            for p in self._parts():
                n += len(p)
            self._length = n
        return self._length

    def parts(self):
        left = self.length()
        for p in self._parts():
            if len(p) >= left:
                yield p[:left]
                return
            left -= len(p)
            yield p
        if left:
            yield b" " * left
