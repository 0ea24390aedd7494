# The OCPP transaction outbox on flash (docs/ocpp.md, "Transactions"): StartTransaction and StopTransaction are
# recorded here BEFORE they are sent, and their answers are recorded when they come, so a reboot or a link that
# was down for days resends exactly what was never answered, in the order it happened.
#
# One file `ocpp/outbox` of 64-byte records with a CRC32, appended (each littlefs append is atomic):
#   START  session seq, connector, meterStart (Wh), timestamp, idTag   (written once per session: the index says)
#   STOP   session seq, meterStop, timestamp, reason                   (written once per START)
#   TXID   session seq, the backend's transactionId, idTagInfo status (the Start's answer)
#   DONE   session seq                                                 (the Stop's answer, or given up)
# When the file holds CAP records it is compacted: the records of unfinished transactions are written to
# `ocpp/outbox.new`, which is renamed over the old file (atomic in littlefs; a cut before the rename leaves the
# old file, and the boot removes the stray new one). A transaction needs at most 4 records and compaction keeps
# at most 3 of each live one, so with at most MAX_TX live transactions an append always finds room.
#
# Duplicates are impossible by construction: a message is sent only from a record, a record is written only when
# the index has none for that session, and a message is re-sent only while its answer record is missing. The one
# window left is a power cut between the backend's answer arriving and its answer record being written (one
# append); then the same message, with the same content and timestamp, goes again after the boot, and that is
# the at-least-once OCPP 1.6 asks for (the backend recognises it by its content).
import os
import struct
from micropython import const

try:
    from binascii import crc32
except ImportError:  # CPython tests
    from zlib import crc32

RECORD = const(64)
_BODY = const(60)
_MAGIC = const(0xA7)
_FMT = "<BBBBIIiI20s"  # magic, kind, reason/status, attempts, seq, connector/-, meter or txid, timestamp, idTag
K_START = const(1)
K_STOP = const(2)
K_TXID = const(3)
K_DONE = const(4)
CAP = const(128)       # records in the file: 8 KB, two littlefs blocks (16 KB while a compaction runs)
MAX_TX = const(32)     # unfinished transactions: at least 20 complete offline sessions per connector


class Tx:
    """One transaction as the outbox knows it."""

    def __init__(self, seq):
        self.seq = seq
        self.connector = 1
        self.id_tag = ""
        self.meter_start = 0
        self.ts_start = 0
        self.txid = None       # the backend's transactionId once the Start was answered; -1: Start given up
        self.status = 0        # index into core.ID_STATUS of the Start's idTagInfo
        self.stop = None       # (meterStop, timestamp, reason) once the session ended
        self.done = False      # the Stop was answered (or given up)


class Outbox:
    def __init__(self, root, log):
        self.path = (root + "/" if root else "") + "ocpp/outbox"
        self.log = log
        self.txs = []          # live transactions, in the order their Start was recorded
        self.queue = []        # [(kind, Tx)] messages not answered yet, in the order they were recorded
        self.records = 0       # records in the file
        self.bad = 0
        self.writes = 0
        self.compactions = 0
        self._boot()

    # ---- boot: replay the file

    def _boot(self):
        try:
            os.remove(self.path + ".new")  # a compaction cut before its rename: the old file is whole
        except OSError:
            pass
        by_seq = {}
        buf = bytearray(RECORD)  # a record buffer only while one is read or written: 4 appends a session
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        with f:
            while f.readinto(buf) == RECORD:
                self.records += 1
                if buf[0] != _MAGIC or struct.unpack_from("<I", buf, _BODY)[0] != crc32(
                        memoryview(buf)[:_BODY]) & 0xFFFFFFFF:
                    self.bad += 1
                    continue
                self._replay(struct.unpack_from(_FMT, buf, 0), by_seq)
        self.txs = [t for t in self.txs if not t.done]
        if self.bad:
            self.log.warn("ocpp", "outbox: %d damaged records ignored" % self.bad)

    def _replay(self, v, by_seq):
        kind, seq = v[1], v[4]
        t = by_seq.get(seq)
        if kind == K_START:
            if t is not None:
                return
            t = by_seq[seq] = Tx(seq)
            t.connector, t.meter_start, t.ts_start = v[5], v[6], v[7]
            t.id_tag = v[8].rstrip(b"\0").decode()
            self.txs.append(t)
            self.queue.append((K_START, t))
        elif t is None:
            return
        elif kind == K_TXID and t.txid is None:
            t.txid = v[6]
            t.status = v[2]
            self._unqueue(K_START, t)
        elif kind == K_STOP and t.stop is None:
            t.stop = (v[6], v[7], v[2])
            self.queue.append((K_STOP, t))
        elif kind == K_DONE and not t.done:
            t.done = True
            self._unqueue(K_STOP, t)

    def _unqueue(self, kind, t):
        q = self.queue
        for i in range(len(q)):
            if q[i][0] == kind and q[i][1] is t:
                q.pop(i)
                return

    # ---- readers

    def find(self, seq):
        for t in self.txs:
            if t.seq == seq:
                return t
        return None

    def full(self):
        """No room for another transaction (the outbox-full rule, docs/ocpp.md)."""
        return len(self.txs) >= MAX_TX

    def head(self):
        """The next message to send: (kind, Tx) or None. A Stop whose Start is unanswered is behind that Start
        in the queue, so it waits for the transactionId by construction."""
        return self.queue[0] if self.queue else None

    # ---- writing (each one append, after which RAM follows)

    def start(self, seq, connector, id_tag, meter, ts):
        """Record a session's StartTransaction. -> its Tx; None if the outbox is full or it has one already."""
        if self.find(seq) is not None or self.full():
            return None
        t = Tx(seq)
        t.connector, t.id_tag, t.meter_start, t.ts_start = connector, id_tag[:20], meter, ts
        self._append(K_START, t, 0, connector, meter, ts, t.id_tag)
        self.txs.append(t)
        self.queue.append((K_START, t))
        return t

    def stop(self, t, meter, ts, reason):
        """Record a transaction's StopTransaction (reason: codes.STOP_* index). Once only."""
        if t.stop is not None:
            return
        self._append(K_STOP, t, reason, 0, meter, ts, "")
        t.stop = (meter, ts, reason)
        self.queue.append((K_STOP, t))

    def started(self, t, txid, status):
        """The Start's answer (txid -1: given up)."""
        if t.txid is not None:
            return
        self._append(K_TXID, t, status, 0, txid, 0, "")
        t.txid = txid
        t.status = status
        self._unqueue(K_START, t)

    def stopped(self, t):
        """The Stop's answer (or given up): the transaction is finished and leaves RAM."""
        if t.done:
            return
        self._append(K_DONE, t, 0, 0, 0, 0, "")
        t.done = True
        self._unqueue(K_STOP, t)
        self.txs.remove(t)

    def _pack(self, kind, seq, reason, c, meter, ts, tag):
        buf = bytearray(RECORD)
        struct.pack_into(_FMT, buf, 0, _MAGIC, kind, reason, 0, seq, c, meter, ts, tag.encode())
        struct.pack_into("<I", buf, _BODY, crc32(memoryview(buf)[:_BODY]) & 0xFFFFFFFF)
        return buf

    def _mkdir(self):
        try:
            os.mkdir(self.path[:self.path.rfind("/")])
        except OSError:
            pass  # exists

    def _append(self, kind, t, reason, c, meter, ts, tag):
        if self.records >= CAP:
            self._compact()
        if self.records == 0:
            self._mkdir()
        buf = self._pack(kind, t.seq, reason, c, meter, ts, tag)
        with open(self.path, "ab") as f:
            f.write(buf)
        self.records += 1
        self.writes += 1

    def _compact(self):
        """Rewrite only the live transactions' records into a new file and rename it over the old one."""
        new = self.path + ".new"
        n = 0
        with open(new, "wb") as f:
            for t in self.txs:
                f.write(self._pack(K_START, t.seq, 0, t.connector, t.meter_start, t.ts_start, t.id_tag))
                n += 1
                if t.txid is not None:
                    f.write(self._pack(K_TXID, t.seq, t.status, 0, t.txid, 0, ""))
                    n += 1
                if t.stop is not None:
                    f.write(self._pack(K_STOP, t.seq, t.stop[2], 0, t.stop[0], t.stop[1], ""))
                    n += 1
        os.rename(new, self.path)
        self.records = n
        self.compactions += 1
