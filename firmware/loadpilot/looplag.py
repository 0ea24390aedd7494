# Loop-lag monitor: a task that asks to wake every PERIOD_MS and records how late it actually woke.
# A late wake-up means some other task held the loop; the worst stall and p99 go into the status view.
import asyncio
import gc
import time
from micropython import const

PERIOD_MS = const(10)
_BINS = const(101)  # 1 ms bins 0..99 plus one overflow bin for >= 100 ms


class LoopLagMonitor:
    def __init__(self, period_ms=PERIOD_MS):
        self.period_ms = period_ms
        self.hist = bytearray(_BINS * 4)  # uint32 counts, preallocated so a tick allocates nothing
        self._mv = memoryview(self.hist)
        self.samples = 0
        self.worst_ms = 0
        self.last_tick = time.ticks_ms()
        self.heap_free_min = gc.mem_free()
        self.heap_free = self.heap_free_min
        self.heap_alloc = gc.mem_alloc()

    def _count(self, i):
        h = self.hist
        j = i * 4
        return h[j] | (h[j + 1] << 8) | (h[j + 2] << 16) | (h[j + 3] << 24)

    def _inc(self, i):
        h = self.hist
        j = i * 4
        for k in range(4):  # little-endian uint32 increment without boxing big ints
            v = h[j + k] + 1
            if v < 256:
                h[j + k] = v
                return
            h[j + k] = 0

    def record(self, lag_ms):
        if lag_ms < 0:
            lag_ms = 0
        if lag_ms > self.worst_ms:
            self.worst_ms = lag_ms
        self._inc(lag_ms if lag_ms < _BINS - 1 else _BINS - 1)
        self.samples += 1

    def percentile_ms(self, pct):
        """Lag in ms below which pct % of samples lie (bin resolution 1 ms; 100 means >= 100)."""
        if not self.samples:
            return 0
        target = (self.samples * pct + 99) // 100
        seen = 0
        for i in range(_BINS):
            seen += self._count(i)
            if seen >= target:
                return i
        return _BINS - 1

    def reset(self):
        for i in range(len(self.hist)):
            self.hist[i] = 0
        self.samples = 0
        self.worst_ms = 0

    def age_ms(self):
        return time.ticks_diff(time.ticks_ms(), self.last_tick)

    def sample_heap(self):
        self.heap_free = gc.mem_free()
        self.heap_alloc = gc.mem_alloc()
        if self.heap_free < self.heap_free_min:
            self.heap_free_min = self.heap_free

    async def run(self):
        n = 0
        while True:
            start = time.ticks_ms()
            await asyncio.sleep_ms(self.period_ms)
            now = time.ticks_ms()
            self.last_tick = now
            self.record(time.ticks_diff(now, start) - self.period_ms)
            n += 1
            if n >= 100:  # heap once a second is plenty and keeps gc calls off the tick
                n = 0
                self.sample_heap()

    def view(self):
        return {"worst_ms": self.worst_ms, "p99_ms": self.percentile_ms(99), "samples": self.samples}
