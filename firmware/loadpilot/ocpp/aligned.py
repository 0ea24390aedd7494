# ClockAlignedDataInterval (OCPP 1.6 9.1.7): the day, from 00:00:00 UTC, is cut into intervals of the given
# length; a clock-aligned sample is due at each boundary. Imported by ocpp/tx.py only while the interval is not
# 0. The wall clock is read once per interval, in integer ms; between boundaries due() compares ticks only and
# allocates nothing.
import time
from micropython import const

_DAY_MS = const(86400000)
_EPOCH_2000_MS = 946684800000  # ports whose time.time() counts from 2000 (not a const: over 31 bits)


def wall_ms():
    """Unix ms now, whatever the port's epoch (a long integer on 32-bit ports: read once per interval)."""
    ms = time.time_ns() // 1000000
    return ms + _EPOCH_2000_MS if time.gmtime(0)[0] == 2000 else ms


def next_boundary_ms(now_ms, iv_s):
    """The first boundary after now_ms (Unix ms) of intervals of iv_s seconds counted from midnight UTC; a day
    that the interval does not divide ends its last interval early, at midnight."""
    day = now_ms - now_ms % _DAY_MS
    iv = iv_s * 1000
    nxt = day + ((now_ms - day) // iv + 1) * iv
    return nxt if nxt < day + _DAY_MS else day + _DAY_MS


class Clock:
    def __init__(self):
        self.iv = 0     # the interval armed for (s); 0: arm again at the next due()
        self._at = 0    # ticks_ms of the next boundary
        self._ts = 0    # its Unix time (s): the sample's timestamp

    def _arm(self, iv, after_ms=0):
        now = wall_ms()
        nxt = next_boundary_ms(now if now > after_ms else after_ms, iv)  # never the boundary just sampled again
        self.iv = iv
        self._ts = nxt // 1000
        self._at = time.ticks_add(time.ticks_ms(), nxt - now)

    def due(self, iv):
        """-> the Unix time (s) of the boundary just reached, or None. A changed interval arms again."""
        if iv != self.iv:
            self._arm(iv)
            return None
        if time.ticks_diff(time.ticks_ms(), self._at) < 0:
            return None
        ts = self._ts
        self._arm(iv, ts * 1000)  # from the wall clock again: ticks and the clock may drift apart over a day
        return ts
