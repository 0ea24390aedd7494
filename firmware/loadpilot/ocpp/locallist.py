# The OCPP Local Authorization List (OCPP 1.6 3.5.3, SendLocalList / GetLocalListVersion): idTags with their
# status, sent by the backend, kept separately from the local whitelist (sessions/whitelist.py) as the seed
# shows two lists. On flash in `ocpp/locallist`: the version on the first line, then "idTag status" lines.
# Every update rewrites the file through `.new` and a rename, so a power cut leaves the old or the new list.
import os
from micropython import const

from loadpilot.ocpp import core

MAX_LENGTH = const(100)  # LocalAuthListMaxLength and SendLocalListMaxLength


class LocalList:
    def __init__(self, root, log):
        self.dir = (root + "/" if root else "") + "ocpp"
        self.path = self.dir + "/locallist"
        self.log = log
        self.version = 0
        self.entries = {}  # idTag -> status text (Accepted, Blocked, Expired, Invalid, ConcurrentTx)
        try:
            with open(self.path) as f:
                self.version = int(f.readline().strip() or 0)
                for line in f:
                    parts = line.split()
                    if len(parts) == 2:
                        self.entries[parts[0]] = parts[1]
        except (OSError, ValueError):
            self.version = 0
            self.entries = {}

    def status(self, tag):
        """The list's status for tag, or None if the list does not hold it."""
        return self.entries.get(tag)

    def update(self, full, version, items):
        """items: [(idTag, status or None = remove)]. -> "Accepted" | "Failed"; VersionMismatch is the core's."""
        new = {} if full else dict(self.entries)
        for tag, st in items:
            if st is None:
                new.pop(tag, None)
            else:
                new[tag] = st
        if len(new) > MAX_LENGTH:
            return "Failed"
        try:
            os.mkdir(self.dir)
        except OSError:
            pass
        try:
            with open(self.path + ".new", "w") as f:
                f.write("%d\n" % version)
                for tag in new:
                    f.write("%s %s\n" % (tag, new[tag]))
            os.rename(self.path + ".new", self.path)
        except OSError as e:
            self.log.error("ocpp", "local list not saved: %s" % e)
            return "Failed"
        self.entries = new
        self.version = version
        self.log.info("ocpp", "local list version %d: %d IDs" % (version, len(new)))
        return "Accepted"


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
        st = None
        if info is not None:
            st = core._choice(info, "status", core.ID_STATUS)
        elif full:
            raise core.FrameError(None, "OccurenceConstraintViolation", "a full update needs idTagInfo")
        items.append((tag, st))
    if len(items) > 50:  # SendLocalListMaxLength (a message is at most 4 KB: service.MAX_MESSAGE)
        return {"status": "Failed"}, ()
    if not self.get("ocpp_local_list") or self.list_version is None:
        return {"status": "NotSupported"}, ()
    if version < 0 or not full and version <= self.list_version():
        return {"status": "VersionMismatch"}, ()
    # stored before the answer, so that the answer is true (Failed: over the list's length or a flash error);
    # the list is small (at most 100 lines), one file rewrite
    return {"status": self.list_update(full, version, items)}, ()
