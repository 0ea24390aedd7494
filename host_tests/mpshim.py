"""Lets firmware modules run on CPython for unit tests: a `micropython` module, the MicroPython time
functions, asyncio.sleep_ms, and a clock the tests can step (FakeClock)."""
import asyncio
import sys
import time
import types

TICKS_PERIOD = 1 << 30  # MicroPython's ticks wrap at 2**30 on most ports


class FakeClock:
    """A clock that only moves when the test says so. install() routes time.ticks_* through it."""

    def __init__(self, start_ms=0):
        self.us = start_ms * 1000

    def advance_ms(self, ms):
        self.us += int(ms * 1000)

    def ticks_ms(self):
        return (self.us // 1000) % TICKS_PERIOD

    def ticks_us(self):
        return self.us % TICKS_PERIOD


_real = {"ms": lambda: int(time.monotonic() * 1000) % TICKS_PERIOD,
         "us": lambda: int(time.monotonic() * 1000000) % TICKS_PERIOD}
_clock = [None]


def ticks_ms():
    return _clock[0].ticks_ms() if _clock[0] else _real["ms"]()


def ticks_us():
    return _clock[0].ticks_us() if _clock[0] else _real["us"]()


def ticks_diff(a, b):
    d = (a - b) % TICKS_PERIOD
    return d - TICKS_PERIOD if d >= TICKS_PERIOD // 2 else d


def ticks_add(a, delta):
    return (a + delta) % TICKS_PERIOD


def use_clock(clock):
    """Route ticks through clock (or back to real time with None)."""
    _clock[0] = clock


def install():
    if "micropython" not in sys.modules:
        mp = types.ModuleType("micropython")
        mp.const = lambda x: x
        mp.native = mp.viper = lambda f: f
        mp.heap_lock = mp.heap_unlock = lambda: 0
        mp.alloc_emergency_exception_buf = lambda n: None
        mp.schedule = lambda fn, arg: fn(arg)
        sys.modules["micropython"] = mp
    time.ticks_ms = ticks_ms
    time.ticks_us = ticks_us
    time.ticks_diff = ticks_diff
    time.ticks_add = ticks_add
    if not hasattr(asyncio, "sleep_ms"):
        asyncio.sleep_ms = lambda ms: asyncio.sleep(ms / 1000)
    import gc
    if not hasattr(gc, "mem_free"):
        gc.mem_free = lambda: 100000
        gc.mem_alloc = lambda: 20000
