# The OCPP Local Authorization List (OCPP 1.6 3.5.3, SendLocalList / GetLocalListVersion): idTags with their
# status, sent by the backend, kept separately from the local whitelist (sessions/whitelist.py) as the seed
# shows two lists. On flash in `ocpp/locallist`: the version on the first line, then "idTag status" lines.
# Every update rewrites the file through `.new` and a rename, so a power cut leaves the old or the new list.
import os
from micropython import const

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
