# The charging history from the journal (seed: DASHBOARD): the dashboard figures, and the CSV export of the last
# 30 days streamed line by line (the file never exists in RAM). Commands get_sessions / export_sessions
# (api/commands.py) and, later, HTTP and the web UI call these; docs/sessions.md.
import time

from loadpilot.redact import redact

DAY_S = 86400
HEADER = b"start_date,start_time,duration,energy_wh,rfid\n"


def figures(tracker, now_wall, days=30):
    """Total sessions, average duration and energy per session, and the last `days` days' sessions and Wh. The
    averages are over the sessions the journal holds; the total counts every session ever closed (sequence
    numbers are handed out once per session). last_days is None while the clock is not set."""
    j = tracker.journal
    n = dur = wh = month_n = month_wh = 0
    since = now_wall - days * DAY_S if now_wall >= 0 else None
    for s in j.records():
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
            "open": tracker.open_views()}


def latest(journal, count):
    """The newest `count` closed sessions, newest first, as dicts."""
    keep = []
    for s in journal.records():
        keep.append(s.view())
        if len(keep) > count:
            keep.pop(0)
    keep.reverse()
    return keep


def _tag(text):
    # a CSV field: printable ASCII without separators or quotes (IDs are hex in normal form; anything else is
    # masked rather than quoted), and never a credential
    if "://" in text:
        text = redact(text)
    return "".join(c if " " < c <= "~" and c not in ',;"' else "?" for c in text)


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
        self.snap = journal.snapshot()
        self.since = now_wall - days * DAY_S if now_wall >= 0 else None
        self._length = None

    def _lines(self):
        yield HEADER
        since = self.since
        for s in self.journal.records(self.snap):
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
