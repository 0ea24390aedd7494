# The OCPP Local Authorization List (OCPP 1.6 3.5.3, SendLocalList / GetLocalListVersion): idTags with their
# status, sent by the backend, kept separately from the local whitelist (sessions/whitelist.py) as the seed
# shows two lists. On flash in `ocpp/locallist`: the version on the first line, then "idTag status" lines, with
# " expiryDate parentIdTag" ("-" for none) where the backend gave either. Every update rewrites the file through
# `.new` and a rename, so a power cut leaves the old or the new list.
# The operator may delete entries (commands ocpp_list_delete/ocpp_list_clear, api/ocpp_list_cmd.py): the list
# is then no longer the backend's version, so its version becomes 0 (OCPP 1.6: the empty list's). A backend
# that compares versions (GetLocalListVersion) sees a mismatch and sends the list again in full.
import os
from micropython import const

from loadpilot.ocpp import core

MAX_LENGTH = const(100)  # LocalAuthListMaxLength and SendLocalListMaxLength
_CLOCK_KNOWN = const(1577836800)  # 2020-01-01: a clock before it was never set (no NTP, no backend yet)


class LocalList:
    def __init__(self, root, log):
        self.dir = (root + "/" if root else "") + "ocpp"
        self.path = self.dir + "/locallist"
        self.log = log
        self.version = 0
        self.entries = {}  # idTag -> status text (Accepted, Blocked, Expired, Invalid, ConcurrentTx)
        self.extra = {}  # idTag -> (expiryDate or None, parentIdTag or None), only for entries that have either
        try:
            with open(self.path) as f:
                self.version = int(f.readline().strip() or 0)
                for line in f:
                    parts = line.split()
                    if len(parts) in (2, 4):
                        self.entries[parts[0]] = parts[1]
                    if len(parts) == 4:
                        self.extra[parts[0]] = (_none(parts[2]), _none(parts[3]))
        except (OSError, ValueError):
            self.version = 0
            self.entries = {}
            self.extra = {}

    def status(self, tag):
        """The list's status for tag, or None if the list does not hold it. An Accepted entry whose expiryDate
        has passed is Expired (OCPP 1.6 7.25 IdTagInfo); while the clock is unknown, the backend's word stands."""
        st = self.entries.get(tag)
        exp = self.extra.get(tag)
        if st == "Accepted" and exp and exp[0]:
            from loadpilot.ocpp.tx import unix_now  # loaded with transactions anyway
            now = unix_now()
            try:
                if now > _CLOCK_KNOWN and core.parse_time(exp[0]) <= now:
                    return "Expired"
            except ValueError:
                pass  # kept as the backend sent it; SendLocalList validated the time
        return st

    def info(self, tag):
        """(expiryDate, parentIdTag) as the backend sent them, each None if it sent none."""
        return self.extra.get(tag) or (None, None)

    def update(self, full, version, items):
        """items: [(idTag, status or None = remove[, expiryDate, parentIdTag])]. -> "Accepted" | "Failed";
        VersionMismatch is the core's."""
        new = {} if full else dict(self.entries)
        extra = {} if full else dict(self.extra)
        for it in items:
            tag = it[0]
            extra.pop(tag, None)
            if it[1] is None:
                new.pop(tag, None)
            else:
                new[tag] = it[1]
                if len(it) > 2 and (it[2] or it[3]):
                    extra[tag] = (it[2], it[3])
        if len(new) > MAX_LENGTH:
            return "Failed"
        if not self._save(version, new, extra):
            return "Failed"
        self.log.info("ocpp", "local list version %d: %d IDs" % (version, len(new)))
        return "Accepted"

    def delete(self, tags):
        """The operator's deletion (tags: the idTags, or None = all). The list is then ours, not the backend's
        version: it reports 0, so the backend sends it again. -> the number deleted; raises OSError."""
        new = {} if tags is None else dict(self.entries)
        extra = {} if tags is None else dict(self.extra)
        for tag in tags or ():
            new.pop(tag, None)
            extra.pop(tag, None)
        n = len(self.entries) - len(new)
        if not self._save(0, new, extra):
            raise OSError("flash write failed")
        self.log.warn("ocpp", "local list: %d IDs deleted by the operator; version 0 until the backend sends it "
                              "again" % n)
        return n

    def _save(self, version, new, extra):
        try:
            os.mkdir(self.dir)
        except OSError:
            pass
        try:
            with open(self.path + ".new", "w") as f:
                f.write("%d\n" % version)
                for tag in new:
                    e = extra.get(tag)
                    if e is None:
                        f.write("%s %s\n" % (tag, new[tag]))
                    else:
                        f.write("%s %s %s %s\n" % (tag, new[tag], e[0] or "-", e[1] or "-"))
            os.rename(self.path + ".new", self.path)
        except OSError as e:
            self.log.error("ocpp", "local list not saved: %s" % e)
            return False
        self.entries = new
        self.extra = extra
        self.version = version
        return True


def _none(text):
    return None if text == "-" else text


def answer_version(self, p):
    """GetLocalListVersion's answer (core.Core self)."""
    if not self.get("ocpp_local_list") or self.list_version is None:
        return {"listVersion": -1}, ()
    return {"listVersion": self.list_version()}, ()


def answer_send(self, p):
    """SendLocalList's answer (core.Core self): the list is stored before the answer, so that it is true."""
    version = core._field(p, "listVersion", int)
    full = core._choice(p, "updateType", ("Full", "Differential")) == "Full"
    items = []
    for e in core._field(p, "localAuthorizationList", list, False) or ():
        if not isinstance(e, dict):
            raise core.FrameError(None, "TypeConstraintViolation", "localAuthorizationList entries are objects")
        tag = core._field(e, "idTag", str)
        if not 0 < len(tag) <= 20 or " " in tag:
            raise core.FrameError(None, "PropertyConstraintViolation", "idTag: 1..20 characters")
        info = core._field(e, "idTagInfo", dict, False)
        st = expiry = parent = None
        if info is not None:
            st = core._choice(info, "status", core.ID_STATUS)
            expiry = core._field(info, "expiryDate", str, False)
            parent = core._field(info, "parentIdTag", str, False)
            if expiry is not None and not 0 < len(expiry) <= 40 or " " in (expiry or ""):
                raise core.FrameError(None, "PropertyConstraintViolation", "expiryDate: a dateTime")
            if parent is not None and not 0 < len(parent) <= 20 or " " in (parent or ""):
                raise core.FrameError(None, "PropertyConstraintViolation", "parentIdTag: 1..20 characters")
        elif full:
            raise core.FrameError(None, "OccurenceConstraintViolation", "a full update needs idTagInfo")
        items.append((tag, st, expiry, parent))
    if len(items) > 50:  # SendLocalListMaxLength (a message is at most 4 KB: service.MAX_MESSAGE)
        return {"status": "Failed"}, ()
    if not self.get("ocpp_local_list") or self.list_version is None:
        return {"status": "NotSupported"}, ()
    if version < 0 or not full and version <= self.list_version():
        return {"status": "VersionMismatch"}, ()
    # stored before the answer, so that the answer is true (Failed: over the list's length or a flash error);
    # the list is small (at most 100 lines), one file rewrite
    return {"status": self.list_update(full, version, items)}, ()
