# What the manager must remember between cycles, plus preallocated scratch space so a cycle allocates
# (almost) nothing. Times are ticks_ms values; they are only ever compared via elapsed(), never added,
# so they stay small ints on a 32-bit port.
from micropython import const

from .model import Result, R_NO_CAR

TICKS_PERIOD = const(0x40000000)  # time.ticks_ms() wraps at 2**30


def elapsed(now_ms, then_ms):
    """ms from then_ms to now_ms on the wrapping ticks clock (never negative)."""
    return (now_ms - then_ms) & (TICKS_PERIOD - 1)


class Slot:
    """Per-chargepoint memory, matched to the chargepoint by position and dev_id."""

    def __init__(self, dev_id):
        self.dev_id = dev_id
        self.result = Result(dev_id)
        self.plugins = 0              # the chargepoint's plug-in count last cycle (kept across reset)
        self.reset()

    def reset(self):
        self.last_ma = 0              # what we allocated last cycle (what static mode assumes it draws)
        self.pause_since = None       # a pause began here (minimum pause time)
        self.charge_since = None      # charging (allocation > 0) since
        self.pv_above_since = None    # surplus above the start threshold since
        self.pv_below_since = None    # surplus below the stop threshold since
        self.silent_since = None      # wallbox not answering since
        self.want_phases = 0          # 0 = keep; 1/3 = a switch condition holds ...
        self.want_since = None        # ... since then
        self.last_switch = None       # last time we asked for a phase switch
        self.draw_capped = False      # capped at its own draw last cycle (hysteresis)
        self.phases_out = 0           # phases we ask for (0 = not decided yet: the car's own)
        self.plugged_since = None     # session start
        self.wait_since = None        # waiting for current since (plug-in or the last stop): round robin
        self.idle = False             # stopped while not drawing: stays at the back of the queue
        self.result.current_ma = 0
        self.result.enabled = False
        self.result.reason = R_NO_CAR
        self.result.write = False
        # Scratch for one cycle.
        self.cand = False
        self.granted = False          # got its minimum this cycle
        self.hi = 0                   # upper bound this cycle (own max, PV share, car draw)
        self.hi_reason = 0
        self.k1 = 0                   # how many of its phases sit on grid L1/L2/L3 (0 or 1)
        self.k2 = 0
        self.k3 = 0
        self.alloc = 0
        self.frozen = False
        self.reason = 0
        self.pv_ma = 0
        self.wish = 0                 # 1/3 = this cycle's conditions call for that many phases
        self.prio = 0
        self.rank = 0
        self.wait_ms = 0


class State:
    def __init__(self):
        self.slots = []
        self.results = []
        self.order = []
        # Grid meter memory (dynamic mode).
        self.grid_ok_ms = None        # last fresh grid reading
        self.house_ma = [0, 0, 0]     # last good non-EV load per grid phase
        # Overdraw: reduce the budget for overdraw_hold_ms after the grid current exceeded the limit.
        self.overdraw_ma = [0, 0, 0]
        self.overdraw_since = None
        self.overdraw_max_ma = 0      # the historical maximum ("Overdraft" field), reset by the user
        # Per-cycle scratch.
        self.budget = [0, 0, 0]       # what EVs may draw per grid phase
        self.budget_reason = [0, 0, 0]
        self.base = [0, 0, 0]         # load we cannot control per grid phase (imbalance reference)
        self.load = [0, 0, 0]         # EV allocation per grid phase while distributing
        self.group_free = {}          # group id -> [l1, l2, l3] left for the group
        self.group_count = {}         # group id -> unfrozen cars per phase while distributing
        self.free_min = [0, 0, 0]     # budget left per phase after the minimum stage (1p/3p wishes)
        self.surplus_w = 0
        self.meter_failsafe = False

    def sync(self, chargepoints):
        """Match slots to this cycle's chargepoints; allocates only when the configuration changed."""
        slots = self.slots
        n = len(chargepoints)
        while len(slots) > n:
            slots.pop()
        for i in range(n):
            dev_id = chargepoints[i].dev_id
            if i < len(slots):
                s = slots[i]
                if s.dev_id != dev_id:
                    s.dev_id = dev_id
                    s.result.dev_id = dev_id
                    s.reset()
            else:
                slots.append(Slot(dev_id))
        if len(self.results) != n:
            self.results = [s.result for s in slots]
            self.order = list(range(n))
        else:
            for i in range(n):
                self.results[i] = slots[i].result

    def group(self, gid):
        g = self.group_free.get(gid)
        if g is None:
            g = [0, 0, 0]
            self.group_free[gid] = g
        return g
