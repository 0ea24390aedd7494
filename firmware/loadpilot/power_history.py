# The Dashboard plot's history (docs/webui.md "The plot"): grid, PV and all-wallboxes power, one sample a
# minute for the last 4 hours, in a ring preallocated at boot. The manager cycle feeds it right after writing the
# site totals, the figures get_status shows (Site.totals grid, generators, evse_used), so the plot and the tiles
# never disagree. Built only when the HTTP server is on (http_port); off, this module is not even imported.
#
#   get_power_history&since=N   {"step_s", "step_ms", "end_s", "clock", "age_ms", "first", "next", "grid_w", "pv_w",
#                               "evse_w"} oldest first, in W; null: no reading in that minute (no grid meter, the
#                               manager stood still). end_s: when the newest sample closed, unix s if clock is 1,
#                               else uptime s; age_ms: how long ago. first/next: sample numbers; since=next asks
#                               for the newer samples only.
import time
from array import array

from micropython import const

from loadpilot.api.commands import CommandError
from loadpilot.codes import T_EVSE_USED, T_GENERATORS, T_GRID

STEP_MS = 60000  # module values, not const: a test or the sim shortens them before boot (Firmware(patch=...))
N_SAMPLES = 240  # 4 hours of minutes
SERIES = (T_GRID, T_GENERATORS, T_EVSE_USED)
NAMES = (b"grid_w", b"pv_w", b"evse_w")
_UNIT_W = const(10)        # int16 in 10 W steps: +-327 kW, which no house connection reaches
_MAX = const(32767)
_NULL = const(-32768)      # no reading in the minute
_CLAMP_W = const(327670)
_EPOCH_2000 = const(946684800)  # ports whose time.time() counts from 2000 (the ESP32)
_HOLD_MS = const(10000)    # 5 manager cycles: a longer pause means the manager stood still
_CHUNK = const(40)         # values rendered per streamed part


class PowerHistory:
    def __init__(self, site, started_ms):
        self.site = site
        self.started_ms = started_ms
        self.step_ms = STEP_MS
        self.n = N_SAMPLES
        self.ring = array("h", range(3 * N_SAMPLES))  # sample k of series s at [3 * (k % n) + s]
        self._sum = array("i", (0, 0, 0))  # the open minute: sum of W and number of readings per series
        self._cnt = array("i", (0, 0, 0))
        self.count = 0        # samples closed since boot (the number of the next one)
        self._start = None    # ticks_ms when the open minute began
        self.end_ms = None    # ticks_ms when the newest sample closed
        self._last = None     # ticks_ms of the cycle before

    def sample(self, now):
        """One manager cycle's totals into the open minute (the average of the minute, not its last value: a
        2 s spike of a car starting should not stand for the whole minute). Allocates nothing."""
        t = self.site.totals
        s = self._sum
        c = self._cnt
        for k in range(3):
            r = t[SERIES[k]]
            if r.updated_ms is not None:
                w = r.power_w
                s[k] += _CLAMP_W if w > _CLAMP_W else -_CLAMP_W if w < -_CLAMP_W else w  # saturate, never wrap
                c[k] += 1
        last = self._last
        self._last = now
        if self._start is None:
            self._start = now
            return
        late = time.ticks_diff(now, self._start)
        if late < self.step_ms:
            return
        if late >= self.n * self.step_ms:  # the manager stood still for longer than the ring: a null ring
            for _ in range(self.n):
                self._close(False)
            self._start = now
        else:
            self._close(False)
            self._start = time.ticks_add(self._start, self.step_ms)
            late -= self.step_ms
            # steps no cycle fell into: a step shorter than a cycle (the sim) holds the last value; a manager that
            # stood still (restarted after a crash) leaves its minutes null
            hold = time.ticks_diff(now, last) <= _HOLD_MS
            while late >= self.step_ms:
                self._close(hold)
                self._start = time.ticks_add(self._start, self.step_ms)
                late -= self.step_ms
        self.end_ms = now

    def _close(self, hold):
        base = 3 * (self.count % self.n)
        prev = 3 * ((self.count - 1) % self.n)
        s = self._sum
        c = self._cnt
        ring = self.ring
        for k in range(3):
            n = c[k]
            if hold and self.count:
                ring[base + k] = ring[prev + k]
            else:  # the mean in 10 W steps, rounded half up; within +-_MAX as each reading was saturated
                ring[base + k] = _NULL if n == 0 else (2 * s[k] // n + _UNIT_W) // (2 * _UNIT_W)
            s[k] = 0
            c[k] = 0
        self.count += 1

    def command(self, args, payload):
        since = args.get("since", "0")
        if not since.isdigit():
            raise CommandError("get_power_history: since must be a sample number (the answer's next), got %r" %
                               since)
        return HistoryAnswer(self, int(since))


def _unix_now():
    t = int(time.time())
    if time.gmtime(0)[0] == 2000:
        t += _EPOCH_2000
    return t if t >= 1704067200 else -1  # before 2024: the clock is not set


class HistoryAnswer:
    """The answer as a stream (length(), then parts()): about 4 KB of JSON for 4 hours never exists in RAM at
    once. Rendered from a copy of the ring taken when asked (1.4 KB), so both passes see the same samples."""

    content_type = "application/json"

    def __init__(self, h, since):
        n = min(h.count, h.n)
        first = max(h.count - n, since)
        if first > h.count:
            first = h.count
        self.k = h.count - first  # samples in the answer
        self.snap = array("h", range(self.k * 3))
        for i in range(self.k):
            base = 3 * ((first + i) % h.n)
            for s in range(3):
                self.snap[3 * i + s] = h.ring[base + s]
        now = time.ticks_ms()
        age = 0 if h.end_ms is None else time.ticks_diff(now, h.end_ms)
        wall = _unix_now()
        if wall > 0:
            end_s = wall - age // 1000
        else:  # clock not set: the uptime of the newest sample
            end_s = time.ticks_diff(now, h.started_ms) // 1000 - age // 1000
        # step_ms too: a shortened step (tests, the sim) is no whole number of seconds
        self.head = b'{"step_s":%d,"step_ms":%d,"end_s":%d,"clock":%d,"age_ms":%d,"first":%d,"next":%d' % (
            h.step_ms // 1000, h.step_ms, end_s, wall > 0, age, first, h.count)
        self.buf = bytearray(8 * _CHUNK)  # ",-327670" at most per value
        self._length = None

    def _fill(self, s, i):
        """Values i.. of series s as JSON text into self.buf, digit by digit (no object per number). -> bytes."""
        buf = self.buf
        snap = self.snap
        o = 0
        for j in range(i, min(i + _CHUNK, self.k)):
            if j:
                buf[o] = 44  # ,
                o += 1
            v = snap[3 * j + s]
            if v == _NULL:
                buf[o] = 110  # null
                buf[o + 1] = 117
                buf[o + 2] = 108
                buf[o + 3] = 108
                o += 4
                continue
            if v < 0:
                buf[o] = 45  # -
                o += 1
                v = -v
            v *= _UNIT_W
            d = 1
            p = 10
            while p <= v:
                p *= 10
                d += 1
            o += d
            e = o
            while d:
                e -= 1
                buf[e] = 48 + v % 10
                v //= 10
                d -= 1
        return o

    def _parts(self):
        yield self.head
        mv = memoryview(self.buf)
        for s in range(3):
            yield b',"' + NAMES[s] + b'":['
            for i in range(0, self.k, _CHUNK):
                yield mv[:self._fill(s, i)]  # the buffer is reused: each transport writes a part before the next
            yield b"]"
        yield b"}"

    def length(self):
        if self._length is None:
            n = 0
            for p in self._parts():
                n += len(p)
            self._length = n
        return self._length

    def parts(self):
        return self._parts()  # from the snapshot: both passes yield the same bytes
