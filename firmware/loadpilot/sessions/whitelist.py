# The local whitelist (seed: WHITELISTS): IDs that may charge. In RAM a sorted bytearray of 11-byte records
# (ids.record: 1,000 IDs = 11 KB, looked up by binary search). On flash an append log, whitelist.log, of
# 13-byte entries: op ("+" add, "-" delete), record, check byte. One add or delete appends one entry (no
# rewrite of the whole file); the file is compacted (rewritten as adds of the live IDs) when it holds more
# than twice the live entries plus COMPACT_SLACK. Every change reaches flash before RAM: a refused or failed
# write changes nothing. Power-cut safety is littlefs's: an append is committed when its file is closed, and a
# rewrite (compaction, CSV import) goes to whitelist.new and replaces the log with one rename; delete all
# removes the file. A torn or damaged entry ends the log at the last good one (logged). docs/authorization.md
import os
from micropython import const

from loadpilot.sessions import ids

MAX_ENTRIES = const(1000)
COMPACT_SLACK = const(64)
MAX_CSV_BYTES = const(65536)  # one import, all parts together
MAX_LINE = const(256)
EXPORT_PAGE = const(100)  # IDs per export page: under 2.5 KB, inside one MQTT packet
SEARCH_MAX = const(50)
_ENTRY = const(13)
_ADD = const(0x2B)  # "+"
_DEL = const(0x2D)  # "-"
_HEADER_NAMES = ("ID", "RFID", "IDTAG", "TAG", "UID", "CARD", "BADGE")
_CSV_HEADER = "id,type\n"


class WhitelistError(ValueError):
    pass


def _check(op, rec):
    c = op
    for b in rec:
        c = (c * 31 + b) & 0xFF
    return c ^ 0xA5


def _entry(op, rec):
    e = bytearray(_ENTRY)
    e[0] = op
    e[1:12] = rec
    e[12] = _check(op, rec)
    return e


class Whitelist:
    def __init__(self, root, log, max_entries=MAX_ENTRIES):
        self.path = root + "/whitelist.log" if root else "whitelist.log"
        self.log = log
        self.max_entries = max_entries
        self.recs = bytearray()
        self.log_entries = 0  # entries in the file (live + superseded)
        self.damaged = False  # the file ended in a damaged entry: the next change compacts it away
        self._import = None
        self._load()

    def __len__(self):
        return len(self.recs) // ids.RECORD

    # ---- lookup

    def _find(self, rec):
        """(index, found) of rec in the sorted records."""
        r = self.recs
        lo = 0
        hi = len(r) // ids.RECORD
        while lo < hi:
            m = (lo + hi) // 2
            x = r[m * ids.RECORD:(m + 1) * ids.RECORD]
            if x == rec:
                return m, True
            if x < rec:
                lo = m + 1
            else:
                hi = m
        return lo, False

    def contains(self, norm):
        return self._find(ids.record(norm))[1]

    def get(self, i):
        return ids.from_record(self.recs[i * ids.RECORD:(i + 1) * ids.RECORD])

    def search(self, query, limit=SEARCH_MAX):
        """IDs whose normal form contains query (separators and case ignored) -> (ids, more)."""
        q = query.strip().upper()
        for s in ":- ":
            q = q.replace(s, "")
        out = []
        for i in range(len(self)):
            n = self.get(i)
            if q in n:
                if len(out) == limit:
                    return out, True
                out.append(n)
        return out, False

    # ---- changes (flash first, then RAM)

    def add(self, text):
        """-> (normal form, added: False if it was there already)."""
        norm = ids.normal(text)
        rec = ids.record(norm)
        i, found = self._find(rec)
        if found:
            return norm, False
        if len(self) >= self.max_entries:
            raise WhitelistError("the whitelist is full (%d entries)" % self.max_entries)
        self._append(_ADD, rec)
        self.recs[i * ids.RECORD:i * ids.RECORD] = rec
        self._maybe_compact()
        return norm, True

    def delete(self, text):
        norm = ids.normal(text)
        rec = ids.record(norm)
        i, found = self._find(rec)
        if not found:
            return norm, False
        self._append(_DEL, rec)
        self.recs[i * ids.RECORD:(i + 1) * ids.RECORD] = b""
        self._maybe_compact()
        return norm, True

    def clear(self):
        self._import = None
        try:
            os.remove(self.path)
        except OSError as e:
            if e.args and e.args[0] != 2:  # ENOENT: already empty
                raise
        self.recs = bytearray()
        self.log_entries = 0
        self.damaged = False

    def _append(self, op, rec):
        self._import = None  # an import in progress merged into an older copy: it must start again
        if self.damaged:  # never append behind a damaged entry: rewrite first
            self._rewrite(self.recs)
        with open(self.path, "ab") as f:
            f.write(_entry(op, rec))
        self.log_entries += 1

    def _maybe_compact(self):
        if self.log_entries > 2 * len(self) + COMPACT_SLACK:
            self._rewrite(self.recs)

    def _rewrite(self, recs):
        """The log as adds of recs, replacing the old one in one rename."""
        new = self.path[:-4] + ".new"
        with open(new, "wb") as f:
            n = len(recs) // ids.RECORD
            for i in range(n):
                f.write(_entry(_ADD, recs[i * ids.RECORD:(i + 1) * ids.RECORD]))
        os.rename(new, self.path)
        self.log_entries = n
        self.damaged = False

    def _load(self):
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        buf = bytearray(_ENTRY)
        n = 0
        with f:
            while True:
                got = f.readinto(buf)
                if not got:
                    break
                if got < _ENTRY or buf[12] != _check(buf[0], buf[1:12]) or buf[0] not in (_ADD, _DEL) or \
                        ids.from_record(buf[1:12]) is None:
                    self.damaged = True
                    self.log.warn("auth", "whitelist.log: damaged entry %d ignored with what follows" % (n + 1))
                    break
                n += 1
                rec = bytes(buf[1:12])
                i, found = self._find(rec)
                if buf[0] == _ADD and not found:
                    self.recs[i * ids.RECORD:i * ids.RECORD] = rec
                elif buf[0] == _DEL and found:
                    self.recs[i * ids.RECORD:(i + 1) * ids.RECORD] = b""
        self.log_entries = n

    # ---- CSV

    def export_page(self, offset=0, count=EXPORT_PAGE):
        """One page of the CSV export: the header with the first page, then "ID,TYPE" lines. -> (text, next
        offset or None). The pages joined are the whole file; the file never exists in RAM as one piece."""
        total = len(self)
        if offset < 0 or offset > total:
            raise WhitelistError("offset must be 0..%d" % total)
        end = offset + count if offset + count < total else total
        lines = [_CSV_HEADER] if offset == 0 else []
        for i in range(offset, end):
            n = self.get(i)
            lines.append("%s,%s\n" % (n, ids.kind(n)))
        return "".join(lines), (end if end < total else None)

    def import_part(self, data, part=1, last=True):
        """Import a CSV in parts (part 1, 2, ... ; the last one commits). All or nothing: a bad part drops the
        whole import with the line number of the first bad entry and the list stays as it was. IDs already on
        the list are kept once. -> None, or (IDs added, entries) after the last part."""
        if part == 1:
            self._import = _Import(self.recs)
        imp = self._import
        if imp is None or part != imp.part + 1:
            self._import = None
            raise WhitelistError("import: part %d out of order (start again with part 1)" % part)
        try:
            imp.feed(data, self.max_entries)
            if last:
                imp.finish(self.max_entries)
        except WhitelistError:
            self._import = None
            raise
        imp.part = part
        if not last:
            return None
        self._import = None
        added = (len(imp.recs) - len(self.recs)) // ids.RECORD
        if added:
            self._rewrite(imp.recs)
        self.recs = imp.recs
        return added, len(self)


class _Import:
    """A CSV import in progress: the merged list so far (a copy), the line count and the unfinished line."""

    def __init__(self, recs):
        self.recs = bytearray(recs)
        self.part = 0
        self.line = 0
        self.size = 0
        self.rest = b""
        self.column = None  # which field holds the ID (decided by the first line)
        self.delim = None

    def feed(self, data, max_entries):
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, (bytes, bytearray)):
            data = bytes(data)  # a memoryview from a transport
        self.size += len(data)
        if self.size > MAX_CSV_BYTES:
            raise WhitelistError("import: CSV larger than %d bytes (at line %d)" % (MAX_CSV_BYTES, self.line + 1))
        start = 0
        buf = self.rest + bytes(data) if self.rest else data
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            self._line(buf[start:nl], max_entries)
            start = nl + 1
        self.rest = bytes(buf[start:])
        if len(self.rest) > MAX_LINE:
            raise WhitelistError("import: line %d: longer than %d bytes" % (self.line + 1, MAX_LINE))

    def finish(self, max_entries):
        if self.rest:
            self._line(self.rest, max_entries)
            self.rest = b""
        if self.line == 0:
            raise WhitelistError("import: the CSV is empty")

    def _line(self, raw, max_entries):
        self.line += 1
        n = self.line
        if len(raw) > MAX_LINE:
            raise WhitelistError("import: line %d: longer than %d bytes" % (n, MAX_LINE))
        if n == 1 and raw[:3] == b"\xef\xbb\xbf":  # a spreadsheet's UTF-8 byte order mark
            raw = raw[3:]
        for b in raw:
            if b < 0x20 and b not in (9, 13) or b == 0x7F:
                raise WhitelistError("import: line %d: binary data, not a CSV text" % n)
        try:
            text = bytes(raw).decode().strip()
        except UnicodeError:
            raise WhitelistError("import: line %d: not UTF-8 text" % n)
        if not text:
            return
        if self.delim is None:
            self.delim = ";" if ";" in text else ("\t" if "\t" in text else ",")
        fields = [f.strip().strip('"').strip() for f in text.split(self.delim)]
        if self.column is None:
            if self._first(fields, n):
                return  # the header line
            if self.column is None:
                self.column = 0
        if self.column >= len(fields):
            raise WhitelistError("import: line %d: no column %d" % (n, self.column + 1))
        try:
            rec = ids.record(ids.normal(fields[self.column]))
        except ids.IdError as e:
            raise WhitelistError("import: line %d: %s" % (n, e))
        r = self.recs
        lo = 0
        hi = len(r) // ids.RECORD
        while lo < hi:
            m = (lo + hi) // 2
            x = r[m * ids.RECORD:(m + 1) * ids.RECORD]
            if x == rec:
                return
            if x < rec:
                lo = m + 1
            else:
                hi = m
        if len(r) // ids.RECORD >= max_entries:
            raise WhitelistError("import: line %d: the whitelist would hold more than %d entries" % (n, max_entries))
        r[lo * ids.RECORD:lo * ids.RECORD] = rec

    def _first(self, fields, n):
        """The first non-empty line decides the column: the first field holding a valid ID. A line without
        one whose fields are words (not hex) is a header: the column named id/rfid/tag/... (else the first)
        holds the IDs. -> True for a header."""
        words = False
        for i in range(len(fields)):
            f = fields[i]
            try:
                ids.normal(f)
                self.column = i
                return False
            except ids.IdError:
                pass
            for c in f.upper():
                if c not in "0123456789ABCDEF:-_ ":
                    words = True
        if not words:
            return False  # a bad ID on line 1: the caller reports it (column 0)
        self.column = 0
        for i in range(len(fields)):
            if fields[i].upper() in _HEADER_NAMES:
                self.column = i
                break
        return True
