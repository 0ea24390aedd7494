# The session journal on flash (docs/sessions.md). Append-only and power-cut safe:
# - a closed session is one 64-byte record (with a CRC32) appended to the newest segment file `sessions/jNNNNN`
#   of _SEG_RECORDS records (4 KB, one littlefs block); segments form a ring: the oldest is deleted only when a
#   new one is needed and there are _MIN_SEGMENTS already, and the oldest's sessions are older than _KEEP_S or there
#   are _MAX_SEGMENTS already (at least 1,024 sessions, 45 days while they fit in 48 x 4 KB);
# - an open session is the same record in its own small file `sessions/o_<dev_id>`, rewritten at start and at
#   each checkpoint (littlefs keeps a file this small inline in its directory's metadata: a checkpoint programs a
#   few dozen bytes and erases nothing most of the time);
# - closing appends the record, then removes the open file. Every littlefs file update is atomic, and a record
#   carries its session's sequence number, so a boot after a cut anywhere finds each session exactly once:
#   an open file whose sequence number is among the last records is already closed (removed), any other is closed
#   as PowerLoss with its last checkpoint.
# Each record also carries the highest sequence number handed out when it was written, so the boot reads only the
# newest two segments and the open files, never the whole ring.
import os
import struct
from micropython import const

from loadpilot.codes import AUTH_METHODS, STOP_OPEN, STOP_POWER_LOSS, STOP_REASONS

try:
    from binascii import crc32
except ImportError:  # CPython tests
    from zlib import crc32

RECORD_SIZE = const(64)
_BODY = const(60)  # the CRC covers the first 60 bytes and sits in the last 4
_MAGIC = const(0x5A)
# magic, flags (bit 0: times are wall-clock), stop reason, auth method, seq, dev_id, start, end, meter at start
# and end (Wh), peak and last allocated current (mA), highest seq handed out, idTag
_FMT = "<BBBBI4sIIIIIII20s"
_F_WALL = const(1)
_OTHER_METHOD = AUTH_METHODS.index("other")

_SEG_RECORDS = const(64)
_MIN_SEGMENTS = const(17)   # 16 full segments + the one being filled: at least 1,024 closed sessions
_MAX_SEGMENTS = const(48)   # the flash budget: 48 x 4 KB
_KEEP_S = const(45 * 86400)


class Session:
    """One charging session: what the journal stores (times in s: wall-clock epoch if `wall`, else uptime of the
    boot it was recorded in) plus, while it is open, what the tracker keeps in RAM."""

    def __init__(self):
        self.seq = 0
        self.dev_id = ""
        self.wall = False
        self.reason = STOP_OPEN
        self.method = ""
        self.start_s = 0
        self.end_s = 0
        self.meter_start_wh = 0
        self.meter_end_wh = 0
        self.peak_ma = 0
        self.last_ma = 0
        self.id_tag = ""
        self.hi_seq = 0
        # RAM only, while open (tracker.py): uptime at start and at the last checkpoint, meter at the last checkpoint
        self.start_up_s = 0
        self.ckpt_up_s = 0
        self.ckpt_wh = 0
        self.charge_ms = 0  # time in state C/D (OMCCI 718), this boot only
        self.dirty = False  # something worth a checkpoint now (idTag learned, clock set)
        self.plugins = 0  # the box's plug-in count at the start: another count is another car (tracker.py)

    def energy_wh(self):
        d = self.meter_end_wh - self.meter_start_wh
        # a meter that was replaced or reset mid-session counts nothing; -1: the box has not reported yet
        return d if d > 0 and self.meter_start_wh >= 0 else 0

    def duration_s(self):
        d = self.end_s - self.start_s
        return d if d > 0 else 0


def _u32(v):
    return v if 0 <= v <= 0xFFFFFFFF else (0 if v < 0 else 0xFFFFFFFF)


def pack(s, buf, hi_seq):
    m = s.method
    mi = AUTH_METHODS.index(m) if m in AUTH_METHODS else _OTHER_METHOD
    struct.pack_into(_FMT, buf, 0, _MAGIC, _F_WALL if s.wall else 0, s.reason, mi, s.seq, s.dev_id.encode(),
                     _u32(s.start_s), _u32(s.end_s), _u32(s.meter_start_wh), _u32(s.meter_end_wh),
                     _u32(s.peak_ma), _u32(s.last_ma), hi_seq, s.id_tag.encode()[:20])
    struct.pack_into("<I", buf, _BODY, crc32(memoryview(buf)[:_BODY]) & 0xFFFFFFFF)


def unpack(buf, s):
    """Fill s from a 64-byte record; False (s unchanged) for a torn, erased or foreign record."""
    if buf[0] != _MAGIC or struct.unpack_from("<I", buf, _BODY)[0] != crc32(memoryview(buf)[:_BODY]) & 0xFFFFFFFF:
        return False
    v = struct.unpack_from(_FMT, buf, 0)
    if v[2] >= len(STOP_REASONS) or v[3] >= len(AUTH_METHODS):
        return False
    s.wall = bool(v[1] & _F_WALL)
    s.reason = v[2]
    s.method = AUTH_METHODS[v[3]]
    s.seq = v[4]
    s.dev_id = v[5].rstrip(b"\0").decode()
    s.start_s, s.end_s, s.meter_start_wh, s.meter_end_wh, s.peak_ma, s.last_ma, s.hi_seq = v[6:13]
    s.id_tag = v[13].rstrip(b"\0").decode()
    return True


class Journal:
    # the ring's shape (class values: a test gives a small ring to its own instance)
    seg_records = _SEG_RECORDS
    min_segments = _MIN_SEGMENTS
    max_segments = _MAX_SEGMENTS
    keep_s = _KEEP_S

    def __init__(self, root, log, wall=None, **ring):
        """root: the filesystem root ("" = current directory); wall(): wall-clock seconds, or -1 while the clock
        is not set (for the 45-day rule); ring: seg_records, min_segments, max_segments, keep_s."""
        self.dir = (root + "/" if root else "") + "sessions"
        self.log = log
        self.wall = wall or (lambda: -1)
        for k in ring:
            setattr(self, k, ring[k])
        self._buf = bytearray(RECORD_SIZE)
        self.hi_seq = 0        # the highest session number handed out
        self.segments = []     # segment numbers on flash, oldest first
        self._tail_n = 0       # records in the newest segment
        self.recovered = []    # sessions found open at boot, closed as PowerLoss
        self.bad = 0           # records that failed their CRC (counted while reading)
        self.appends = 0
        self.checkpoints = 0
        self._dir = False      # sessions/ exists
        self._boot()

    # ---- files

    def _seg_path(self, n):
        return "%s/j%05d" % (self.dir, n)

    def _open_path(self, dev_id):
        return "%s/o_%s" % (self.dir, dev_id)

    def _read(self, path, pos, buf, count):
        """Read up to count records from position pos of a file into buf. -> records read (0: no file)."""
        try:
            with open(path, "rb") as f:
                f.seek(pos * RECORD_SIZE)
                n = f.readinto(memoryview(buf)[:count * RECORD_SIZE])
        except OSError:
            return 0
        return (n or 0) // RECORD_SIZE

    def _size(self, path):
        try:
            return os.stat(path)[6]
        except OSError:
            return -1

    # ---- boot

    def _boot(self):
        try:
            names = os.listdir(self.dir)
        except OSError:  # no session yet: the directory is made with the first one (a boot writes nothing)
            return
        self._dir = True
        segs = []
        opens = []
        for n in names:
            if n[0] == "j" and n[1:].isdigit():
                segs.append(int(n[1:]))
            elif n.startswith("o_"):
                opens.append(n[2:])
        segs.sort()
        self.segments = segs
        closed = []  # seqs of the records in the newest two segments (a record being closed at a cut is there)
        s = Session()
        buf = self._buf
        for i in range(max(0, len(segs) - 2), len(segs)):
            path = self._seg_path(segs[i])
            size = self._size(path)
            n = size // RECORD_SIZE
            for k in range(n):
                if self._read(path, k, buf, 1) and unpack(buf, s):
                    closed.append(s.seq)
                    self._seen(s)
                else:
                    self.bad += 1
            if i == len(segs) - 1:
                self._tail_n = n
                if size % RECORD_SIZE:  # a torn tail (only on a filesystem without atomic writes)
                    self.log.warn("sessions", "%s: torn last record ignored" % path)
                    self._tail_n = self.seg_records  # the next record goes into a new segment
        for dev_id in sorted(opens):
            path = self._open_path(dev_id)
            o = Session()
            if not (self._read(path, 0, buf, 1) and unpack(buf, o)):
                self.log.warn("sessions", "%s: unreadable open session removed" % path)
                self._remove(path)
                continue
            self._seen(o)
            if o.seq in closed:  # the cut came after its closing record and before the file's removal
                self._remove(path)
                continue
            o.reason = STOP_POWER_LOSS  # with the meter and time of its last checkpoint
            self._append(o)
            self._remove(path)
            self.recovered.append(o)
            self.log.warn("sessions", "session %d on %s was open at power loss: closed with %d Wh"
                          % (o.seq, o.dev_id, o.energy_wh()))

    def _seen(self, s):
        if s.seq > self.hi_seq:
            self.hi_seq = s.seq
        if s.hi_seq > self.hi_seq:
            self.hi_seq = s.hi_seq

    def _remove(self, path):
        try:
            os.remove(path)
        except OSError:
            pass

    # ---- writing

    def next_seq(self):
        self.hi_seq += 1
        return self.hi_seq

    def _mkdir(self):
        if not self._dir:
            try:
                os.mkdir(self.dir)
            except OSError:
                pass  # exists
            self._dir = True

    def checkpoint(self, s):
        """Write an open session's file (at start and at each checkpoint): one atomic file update."""
        self._mkdir()
        pack(s, self._buf, self.hi_seq)
        with open(self._open_path(s.dev_id), "wb") as f:
            f.write(self._buf)
        self.checkpoints += 1

    def close(self, s, reason):
        """Journal a session as closed: append its record, then remove its open file."""
        s.reason = reason
        self._append(s)
        self._remove(self._open_path(s.dev_id))

    def _append(self, s):
        self._mkdir()
        if not self.segments or self._tail_n >= self.seg_records:
            self._new_segment()
        pack(s, self._buf, self.hi_seq)
        with open(self._seg_path(self.segments[-1]), "ab") as f:
            f.write(self._buf)
        self._tail_n += 1
        self.appends += 1

    def _new_segment(self):
        segs = self.segments
        while len(segs) >= self.min_segments and (len(segs) >= self.max_segments or self._expired(segs[0])):
            self._remove(self._seg_path(segs.pop(0)))
        segs.append(segs[-1] + 1 if segs else 1)
        self._tail_n = 0

    def _expired(self, seg):
        """The oldest segment's newest session ended more than keep_s ago (or its age cannot be known)."""
        now = self.wall()
        path = self._seg_path(seg)
        n = self._size(path) // RECORD_SIZE
        s = Session()
        if now < 0 or n <= 0 or not (self._read(path, n - 1, self._buf, 1) and unpack(self._buf, s)) or not s.wall:
            return True
        return now - s.end_s > self.keep_s
