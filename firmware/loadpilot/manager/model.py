# The Charging Manager's inputs and outputs for one cycle: plain objects with integer units (mA, W, ms).
# The bus/driver layer fills a Site once per cycle (reusing the same objects), config fills Params.
from micropython import const

# Car state as the wallbox reports it (IEC 61851 A / B / C-D).
NO_CAR = const(0)
PLUGGED = const(1)
CHARGING = const(2)

# PV charging mode per chargepoint.
PV_OFF = const(0)       # normal load-managed charging from the grid budget
PV_ONLY = const(1)      # charge only from surplus (start/stop thresholds with delays)
PV_MIN = const(2)       # always at least the minimum current, surplus on top
PV_NOW = const(3)       # user override "charge now": like PV_OFF, also on a box configured for PV

# Storage meter roles (surplus-charging.md): charging is never consumption; discharge counts as
# generation only for STORAGE_ALL.
STORAGE_HOME = const(5)
STORAGE_ALL = const(6)

# Reason codes for an allocation. Small ints so a cycle allocates nothing; REASON_NAMES for JSON/MQTT.
R_OK = const(0)              # granted what it asked for
R_OWN_MAX = const(1)         # limited by its own max current
R_FUSE = const(2)            # max total current per phase (incl. house load, reserve, operator percent)
R_EVSE_TOTAL = const(3)      # max total wallbox current
R_IMBALANCE = const(4)       # max phase imbalance
R_GROUP = const(5)           # its charging group's limit
R_PV = const(6)              # PV surplus (waiting for it, limited by it, or stopped for lack of it)
R_SCHEDULE = const(7)        # the time-dependent max-current schedule
R_SHEDDING = const(8)        # load-shedding input active
R_OVERDRAW = const(9)        # budget reduced for 5 minutes after an overdraw
R_FAILSAFE = const(10)       # silent wallbox (counted at fail-safe) or silent grid meter (fail-safe budget)
R_PRIORITY_PAUSE = const(11)  # paused: higher-priority chargepoints took the budget
R_PAUSE_HOLD = const(12)     # paused and the minimum pause time is still running
R_DISABLED = const(13)       # chargepoint disabled
R_NO_CAR = const(14)         # nothing plugged in
R_OBSERVE = const(15)        # load management off: observation mode, nothing is written
R_CAR_DRAW = const(16)       # car draws less than offered: capped at its draw + margin
R_RAMP = const(17)           # slow up: increase limited this cycle
R_OPERATOR = const(18)       # the operator's per-phase limit for all wallboxes (OMCCI 613-615)
R_AUTH = const(19)           # the car waits for authorization (RFID/PIN; docs/authorization.md)

REASON_NAMES = ("ok", "own_max", "fuse", "evse_total", "imbalance", "group", "pv", "schedule", "shedding",
                "overdraw", "failsafe", "priority_pause", "pause_hold", "disabled", "no_car", "observe",
                "car_draw", "ramp", "operator", "auth")

UNLIMITED = const(0x3FFFFFFF)  # largest small int on 32-bit MicroPython: "no limit" without a bigint


class Chargepoint:
    """One wallbox as seen this cycle. The driver layer updates the attributes in place."""

    def __init__(self, dev_id, min_ma=6000, max_ma=16000, phases=3, wiring=(1, 2, 3), priority=1, group=0,
                 pv_mode=PV_OFF, fail_safe_ma=6000, can_switch_phases=False):
        self.dev_id = dev_id
        self.enabled = True
        self.authorized = True          # False: a car here may not charge yet (sessions/auth.py)
        self.state = NO_CAR
        self.plugins = 0                # the box's plug-in count: a new value is a new car (site.DeviceState)
        self.min_ma = min_ma
        self.max_ma = max_ma
        self.phases = phases            # phases the car uses now (1 or 3)
        self.wiring = wiring            # grid phase (1..3) of wallbox phase L1, L2, L3
        self.priority = priority        # higher first
        self.group = group              # 0 = no group
        self.pv_mode = pv_mode
        self.measured_ma = None         # [L1, L2, L3] in wallbox phase order, or None (no meter)
        self.comm_ok = True
        self.fail_safe_ma = fail_safe_ma
        self.can_switch_phases = can_switch_phases


class Site:
    """Everything measured this cycle."""

    def __init__(self, chargepoints=None):
        self.chargepoints = chargepoints if chargepoints is not None else []
        self.grid_ma = None         # [L1, L2, L3] signed (import +, export -), None = no fresh reading
        self.grid_w = None          # signed active power at the grid point, None = derive from grid_ma
        self.storage_w = 0          # storage meter: + charging, - discharging
        self.pv_w = None            # generation meter (consumer/generator concept when there is no grid meter)
        self.consumption_w = None   # consumption meters (same concept)
        self.shedding_active = False
        self.hour = None            # local hour 0..23 for the schedule, None = clock not set


class Params:
    """Configuration (config store) plus volatile overrides (operator percent)."""

    def __init__(self):
        self.load_management = True          # False = observation mode
        self.max_total_ma = 32000            # per phase, house connection
        self.percent = 100                   # grid operator share of max_total_ma, 0..100
        self.reserve_ma = 0
        self.max_total_evse_ma = 0           # 0 = not configured
        self.operator_evse_ma = (0, 0, 0)    # per grid phase L1..L3, all wallboxes together; 0 = none
        self.max_imbalance_ma = 0            # 0 = not checked
        self.imbalance_incl_house = False
        self.has_grid_meter = False          # True = dynamic mode
        self.grid_timeout_ms = 15000         # grid meter silent longer -> fail-safe budget
        self.grid_fail_safe_ma = 6000        # EV budget per phase while the grid meter is silent
        self.wallbox_fail_safe_after_ms = 300000  # a silent box keeps its set-point this long, then fail-safe
        self.schedule = ()                   # ((hour, l1_ma, l2_ma, l3_ma), ...) sorted by hour, >= 2 entries
        self.shedding_offset_ma = (0, 0, 0)  # per grid phase, subtracted while shedding is active
        self.groups = {}                     # group id -> (l1_ma, l2_ma, l3_ma)
        self.storage_role = STORAGE_HOME
        self.voltage_v = 230
        self.min_pause_ms = 300000
        self.rotate_after_ms = 1800000       # round robin: after this long a charging car yields to a waiting one
        self.start_margin_ma = 1000          # dynamic mode: a start needs this much above the minimum
        self.overdraw_hold_ms = 300000
        self.ramp_up_ma = 2000               # slow up: max increase per cycle
        self.draw_margin_ma = 2000           # headroom left above a car's own draw
        self.draw_settle_ms = 30000          # a started car gets this long to ramp before we cap it
        self.step_ma = 100                   # allocation granularity
        self.pv_start_ma = 0                 # surplus per phase needed to start (0 = the car's min current)
        self.pv_stop_ma = 0                  # surplus per phase below which the stop timer runs (0 = min)
        self.pv_start_delay_ms = 60000
        self.pv_stop_delay_ms = 300000
        self.pv_min_charge_ms = 600000
        self.phase_up_delay_ms = 300000      # sufficient power for 3p this long before switching up
        self.phase_down_delay_ms = 60000
        self.phase_switch_interval_ms = 900000  # anti-chatter: at least this long between two switches


class Result:
    """One chargepoint's decision. Preallocated in State and reused every cycle."""

    def __init__(self, dev_id):
        self.dev_id = dev_id
        self.current_ma = 0     # 0 = paused/off
        self.phases = 3         # desired phases; differs from Chargepoint.phases = please switch
        self.enabled = False
        self.reason = R_NO_CAR
        self.write = False      # False = leave this box alone (observation mode, silent box)

    def as_dict(self):
        return {"dev_id": self.dev_id, "current_ma": self.current_ma, "phases": self.phases,
                "enabled": self.enabled, "reason": REASON_NAMES[self.reason], "write": self.write}
