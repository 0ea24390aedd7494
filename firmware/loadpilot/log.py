# System log: a fixed-size ring buffer with levels, echoed to the console and to listeners (MQTT later).
import time

from micropython import const

from loadpilot.codes import SMALL_HEAP_KB
from loadpilot.redact import redact

DEBUG = const(10)
INFO = const(20)
WARN = const(30)
ERROR = const(40)
_NAMES = ((DEBUG, "DEBUG"), (INFO, "INFO"), (WARN, "WARN"), (ERROR, "ERROR"))  # constant: stays in flash
# lines the ring keeps: a full line is about 100-130 bytes of heap on a 32-bit build, so 64 lines are 7 KB that
# a board without PSRAM (codes.SMALL_HEAP_KB) cannot spare; it keeps 16 (console and MQTT log feed see every line)
RING_LINES = 64
RING_LINES_SMALL = 16


def ring_lines(heap_kb):
    return RING_LINES_SMALL if heap_kb <= SMALL_HEAP_KB else RING_LINES


class Log:
    def __init__(self, size=RING_LINES, console_level=INFO):
        self._ring = [None] * size
        self._next = 0
        self.count = 0  # total lines ever logged; lets readers detect what they missed
        self.console_level = console_level
        self.level = DEBUG  # lines below it are dropped; the app keeps INFO except during diagnostic logging
        self._listeners = []

    def resize(self, size):
        """Keep the newest `size` lines (the board's heap decides, ring_lines)."""
        if size != len(self._ring):
            lines = [e for e in (self._ring[(self._next + i) % len(self._ring)] for i in range(len(self._ring)))
                     if e is not None][-size:]
            self._ring = lines + [None] * (size - len(lines))
            self._next = len(lines) % size

    def add_listener(self, fn):
        self._listeners.append(fn)

    def write(self, level, tag, msg):
        if level < self.level:
            return
        msg = redact(msg)  # a URL password never reaches the console, the ring or a listener (MQTT log)
        entry = (time.ticks_ms(), level, tag, msg)
        self._ring[self._next] = entry
        self._next = (self._next + 1) % len(self._ring)
        self.count += 1
        if level >= self.console_level:
            print("%s %s: %s" % (_name(level, level), tag, msg))
        for fn in self._listeners:
            try:
                fn(entry)
            except Exception:  # a broken listener must not break logging
                pass

    def debug(self, tag, msg):
        self.write(DEBUG, tag, msg)

    def info(self, tag, msg):
        self.write(INFO, tag, msg)

    def warn(self, tag, msg):
        self.write(WARN, tag, msg)

    def error(self, tag, msg):
        self.write(ERROR, tag, msg)

    def lines(self, min_level=DEBUG):
        """Entries oldest first, as (ticks_ms, level_name, tag, msg)."""
        n = len(self._ring)
        out = []
        for i in range(n):
            e = self._ring[(self._next + i) % n]
            if e is not None and e[1] >= min_level:
                out.append((e[0], _name(e[1], e[1]), e[2], e[3]))
        return out


def _name(level, default):
    for n in _NAMES:
        if n[0] == level:
            return n[1]
    return default


def level_name(level):
    return _name(level, str(level))
