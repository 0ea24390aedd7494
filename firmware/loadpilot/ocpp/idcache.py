# The OCPP authorization cache (OCPP 1.6 3.5.1): idTags the backend accepted (Authorize, StartTransaction),
# newest last, at most MAX_IDS, on flash in `ocpp/idcache` (one ID a line). Kept apart from the local whitelist
# (sessions/whitelist.py); ClearCache empties it. Every change rewrites the small file through `.new` and a
# rename, so a power cut leaves the old or the new list, never a torn one.
import os
from micropython import const

MAX_IDS = const(32)


class IdCache:
    def __init__(self, root, log):
        self.dir = (root + "/" if root else "") + "ocpp"
        self.path = self.dir + "/idcache"
        self.log = log
        self.ids = []
        try:
            with open(self.path) as f:
                for line in f:
                    t = line.strip()
                    if t and t not in self.ids and len(self.ids) < MAX_IDS:
                        self.ids.append(t)
        except OSError:
            pass

    def __contains__(self, tag):
        return tag in self.ids

    def add(self, tag):
        if self.ids and self.ids[-1] == tag:
            return
        if tag in self.ids:
            self.ids.remove(tag)
        elif len(self.ids) >= MAX_IDS:
            self.ids.pop(0)  # the oldest entry makes room
        self.ids.append(tag)
        self._save()

    def remove(self, tag):
        if tag in self.ids:
            self.ids.remove(tag)
            self._save()

    def clear(self):
        self.ids = []
        self._save()

    def _save(self):
        try:
            os.mkdir(self.dir)
        except OSError:
            pass
        try:
            with open(self.path + ".new", "w") as f:
                for t in self.ids:
                    f.write(t)
                    f.write("\n")
            os.rename(self.path + ".new", self.path)
        except OSError as e:  # the cache is a convenience: a flash error costs offline authorization only
            self.log.error("ocpp", "authorization cache not saved: %s" % e)
