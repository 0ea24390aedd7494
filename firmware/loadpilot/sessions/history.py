# The charging history from the journal (seed: DASHBOARD): reading the journal, a session as JSON (ta_log,
# get_sessions), the dashboard figures, and the CSV export of the last 30 days streamed line by line (the file
# never exists in RAM). Commands get_sessions / export_sessions (api/commands.py) and, later, HTTP and the web UI
# call these; docs/sessions.md. Imported on first use: the tracker's steady state does not need any of it.
import time

from micropython import const

from loadpilot.codes import STOP_OPEN, STOP_REASONS
from loadpilot.redact import redact
from loadpilot.sessions.journal import RECORD_SIZE, Session, unpack

DAY_S = 86400
HEADER = b"start_date,start_time,duration,energy_wh,rfid\n"
_BATCH = const(16)  # records per file read (1 KB buffer; no file stays open across a yield)


def view(s, tracker=None):
    """A session as a JSON-able dict; an open one's duration so far from the tracker."""
    dur = tracker.up_s - s.start_up_s if tracker is not None and s.reason == STOP_OPEN else s.duration_s()
    return {"seq": s.seq, "dev_id": s.dev_id, "start": s.start_s, "end": s.end_s, "clock": s.wall,
            "duration_s": dur, "meter_start_wh": s.meter_start_wh if s.meter_start_wh >= 0 else None,
            "meter_end_wh": s.meter_end_wh if s.meter_start_wh >= 0 else None, "energy_wh": s.energy_wh(),
            "rfid": s.id_tag, "auth": s.method, "reason": STOP_REASONS[s.reason], "peak_ma": s.peak_ma,
            "last_ma": s.last_ma}


def snapshot(journal):
    """The journal's extent now: (segment numbers, records in the newest). records(journal, snapshot) reads
    exactly these records later, even if sessions were closed meanwhile (a streamed export counts, then sends)."""
    return list(journal.segments), journal._tail_n


def records(journal, snap=None):
    """Closed sessions, oldest first. Yields one reused Session: copy what must outlive the next step."""
    segs, tail = snap or snapshot(journal)
    s = Session()
    buf = bytearray(RECORD_SIZE * _BATCH)
    mv = memoryview(buf)
    last = len(segs) - 1
    for i in range(len(segs)):
        path = journal._seg_path(segs[i])
        limit = tail if i == last else journal.seg_records
        pos = 0
        while pos < limit:
            n = journal._read(path, pos, buf, min(_BATCH, limit - pos))
            if not n:
                break  # deleted by the ring meanwhile, or shorter than it should be
            for k in range(n):
                if unpack(mv[k * RECORD_SIZE:(k + 1) * RECORD_SIZE], s):
                    yield s
                else:
                    journal.bad += 1
            pos += n


def status(tracker):
    """The journal and tracker counters (control socket "sessions")."""
    j = tracker.journal
    return {"dir": j.dir, "segments": len(j.segments), "hi_seq": j.hi_seq, "appends": j.appends,
            "checkpoints": j.checkpoints, "bad": j.bad, "recovered": len(j.recovered), "open": len(tracker.open),
            "uptime_s": tracker.up_s, "errors": tracker.errors}


def figures(tracker, now_wall, days=30):
    """Total sessions, average duration and energy per session, and the last `days` days' sessions and Wh. The
    averages are over the sessions the journal holds; the total counts every session ever closed (sequence
    numbers are handed out once per session). last_days is None while the clock is not set."""
    j = tracker.journal
    n = dur = wh = month_n = month_wh = 0
    since = now_wall - days * DAY_S if now_wall >= 0 else None
    for s in records(j):
        e = s.energy_wh()
        n += 1
        dur += s.duration_s()
        wh += e
        if since is not None and s.wall and s.start_s >= since:
            month_n += 1
            month_wh += e
    return {"sessions": j.hi_seq - len(tracker.open), "stored": n,
            "avg_duration_s": dur // n if n else 0, "avg_energy_wh": wh // n if n else 0,
            "last_days": None if since is None else {"days": days, "sessions": month_n, "energy_wh": month_wh},
            "open": [view(s, tracker) for s in tracker.open.values()]}


def latest(journal, count):
    """The newest `count` closed sessions, newest first, as dicts."""
    keep = []
    for s in records(journal):
        keep.append(view(s))
        if len(keep) > count:
            keep.pop(0)
    keep.reverse()
    return keep


def _tag(text):
    # a CSV field: printable ASCII (a user's name may hold spaces) without separators or quotes (IDs are hex in
    # normal form; anything else is masked rather than quoted), and never a credential
    if "://" in text:
        text = redact(text)
    return "".join(c if " " <= c <= "~" and c not in ',;"' else "?" for c in text)


def csv_line(s):
    if s.wall:
        t = time.localtime(s.start_s)
        date = "%04d-%02d-%02d" % (t[0], t[1], t[2])
        clock = "%02d:%02d:%02d" % (t[3], t[4], t[5])
    else:  # recorded before the clock was set: the date is unknown
        date = clock = ""
    d = s.duration_s()
    return ("%s,%s,%d:%02d:%02d,%d,%s\n" % (date, clock, d // 3600, d // 60 % 60, d % 60, s.energy_wh(),
                                            _tag(s.id_tag))).encode()


class CsvExport:
    """The CSV of the sessions that started in the last `days` days (all stored sessions while the clock is not
    set), over a fixed extent of the journal: length() counts the bytes in a first pass, parts() yields them line
    by line, as often as asked (MQTT needs the length before the body; a QoS 1 resend sends it again)."""

    content_type = "text/csv"

    def __init__(self, journal, now_wall, days=30):
        self.journal = journal
        self.snap = snapshot(journal)
        self.since = now_wall - days * DAY_S if now_wall >= 0 else None
        self._length = None

    def _lines(self):
        yield HEADER
        since = self.since
        for s in records(self.journal, self.snap):
            if since is None or (s.wall and s.start_s >= since):
                yield csv_line(s)

    def length(self):
        if self._length is None:
            n = 0
            for line in self._lines():
                n += len(line)
            self._length = n
        return self._length

    def parts(self):
        """Exactly length() bytes. Records are immutable once journalled, so a second pass reads the same bytes,
        unless the ring dropped the oldest segment meanwhile: then the tail is padded with newlines (or cut)."""
        left = self.length()
        for line in self._lines():
            if len(line) >= left:
                yield line[:left]
                return
            left -= len(line)
            yield line
        if left:
            yield b"\n" * left
