# The Charging Manager cycle: reads the site snapshot and the configuration, runs the pure allocation
# (manager/allocate.py), and hands the result out: the local charge point's manager limit, set-points for
# the other wallboxes (the driver layer writes them), and the reason each chargepoint got its current.
# Configuration goes into Params only when it changes, and results are read from the manager's reused
# objects, so a steady-state cycle allocates nothing here either.
import asyncio
import time

from loadpilot.manager import model
from loadpilot.manager.allocate import allocate
from loadpilot.manager.state import State

CYCLE_MS = 2000
FAST_CHECK_MS = 100
ROLE_GENERATION = 2
ROLE_GRID = 3
ROLE_STORAGE = (5, 6)

# site status (1 waiting .. 6 offline) -> manager car state
_CAR_STATE = {1: model.NO_CAR, 2: model.PLUGGED, 3: model.CHARGING, 4: model.CHARGING}
_PV_MODE = {"off": model.PV_OFF, "pv_only": model.PV_ONLY, "min_pv": model.PV_MIN, "now": model.PV_NOW}


def _wiring(text):
    # "231": wallbox L1 on grid L2, L2 on L3, L3 on L1; anything else: straight
    if isinstance(text, str) and len(text) == 3 and sorted(text) == ["1", "2", "3"]:
        return (int(text[0]), int(text[1]), int(text[2]))
    return (1, 2, 3)


class ManagerCycle:
    def __init__(self, store, site, log, evse=None, local_id=None, shed_input=None, setpoints=None):
        self.store = store
        self.site = site
        self.log = log
        self.evse = evse
        self.local_id = local_id
        self.shed_input = shed_input  # the board's load_shed input, or None
        self.state = State()
        self.params = model.Params()
        self.msite = model.Site()
        self.setpoints = setpoints if setpoints is not None else {}  # dev_id -> [enabled, current_ma, phases]
        self.cycles = 0
        self._grid_seen_ms = None  # updated_ms of the grid reading the manager saw last
        self._hour_cycle = 0
        self.build()
        store.subscribe(self._changed)

    def _changed(self, key):
        if key == "devices":
            self.build()
        else:
            self._apply_config()

    def build(self):
        """Chargepoints and meters from the configuration: at boot and when devices change."""
        cps = []
        self.devs = []
        for d in self.store.get("devices"):
            if d["dev_id"][0] != "E" or not d.get("device_enabled", True):
                continue
            cp = model.Chargepoint(d["dev_id"], min_ma=d["min_charging_cur"], max_ma=d["max_charging_cur"],
                                   phases=d.get("phases", 3), wiring=_wiring(d.get("wiring")), priority=d["prio"],
                                   group=d.get("group", 0), pv_mode=_PV_MODE.get(d.get("pv_mode"), model.PV_OFF),
                                   fail_safe_ma=d.get("fail_safe_current", 6000))
            cps.append(cp)
        self.msite.chargepoints = cps
        self.setpoints.clear()
        self.meters = [(d["dev_id"], d.get("role", 0)) for d in self.store.get("devices") if d["dev_id"][0] == "M"]
        self.results = {}
        self._apply_config()

    def _apply_config(self):
        s = self.store
        p = self.params
        p.load_management = s.get("lb_enabled")
        p.max_total_ma = s.get("max_total_current")
        p.reserve_ma = s.get("reserve_current")
        p.max_total_evse_ma = s.get("max_total_evse_current")
        p.operator_evse_ma = tuple(s.get("dlm_operator_limit"))
        p.max_imbalance_ma = s.get("max_imbalance_current")
        p.imbalance_incl_house = s.get("imbalance_add_home")
        p.grid_timeout_ms = s.get("meter_timeout_s") * 1000
        p.wallbox_fail_safe_after_ms = s.get("fail_safe_duration") * 1000
        p.grid_fail_safe_ma = s.get("grid_fail_safe_current")
        p.schedule = tuple((e["hour"], e["l1"], e["l2"], e["l3"]) for e in s.get("cm_schedule"))
        p.shedding_offset_ma = tuple(s.get("shedding_offsets"))
        p.groups = dict((g["group"], (g["l1"], g["l2"], g["l3"])) for g in s.get("group_limits"))
        p.has_grid_meter = any(role == ROLE_GRID for _, role in self.meters)
        self._shed_level = s.get("shedding_active_level") if s.get("shedding_enabled") else None

    def _fresh(self, dev, now):
        r = dev.reading
        return r.updated_ms is not None and time.ticks_diff(now, r.updated_ms) < self.params.grid_timeout_ms

    def _fill(self, now):
        p = self.params
        p.percent = self.store.volatile.get("max_total_cur_prc")
        ms = self.msite
        ms.grid_ma = None
        ms.pv_w = None
        ms.storage_w = 0
        for dev_id, role in self.meters:
            d = self.site.device(dev_id)
            if d is None:
                continue
            r = d.reading
            if role == ROLE_GRID:
                # only a new reading counts; the manager holds the last one for grid_timeout_ms by itself
                if r.updated_ms is not None and r.updated_ms != self._grid_seen_ms:
                    self._grid_seen_ms = r.updated_ms
                    ms.grid_ma = r.current_ma
            elif role == ROLE_GENERATION and self._fresh(d, now):
                ms.pv_w = -r.power_w if r.power_w < 0 else r.power_w
            elif role in ROLE_STORAGE and self._fresh(d, now):
                ms.storage_w = r.power_w
        ms.shedding_active = self.shed_input is not None and self._shed_level is not None and \
            self.shed_input.value() == self._shed_level
        if self._hour_cycle == 0:  # the hour changes slowly; reading the clock allocates a tuple
            lt = time.localtime()
            ms.hour = lt[3] if lt[0] >= 2024 else None  # an unset clock has no hour for the schedule
        self._hour_cycle = (self._hour_cycle + 1) % 30
        for cp in ms.chargepoints:
            d = self.site.device(cp.dev_id)
            local = cp.dev_id == self.local_id
            fresh = local or (d is not None and self._fresh(d, now))
            cp.comm_ok = fresh and (d is None or d.status != 6)
            cp.state = _CAR_STATE.get(d.status, model.NO_CAR) if d is not None else model.NO_CAR
            if local and self.evse is not None:
                cp.phases = self.evse.sm.phases()
                cp.can_switch_phases = self.evse.phase_switching
            elif d is not None and d.phases is not None:  # a remote box that reports its phases
                cp.phases = d.phases
                cp.can_switch_phases = d.can_switch_phases
            cp.measured_ma = d.reading.current_ma if (fresh and d is not None and
                                                       d.reading.updated_ms is not None) else None

    def cycle(self, now):
        self._fill(now)
        if not self.params.load_management:
            self._observation_setpoints()
        results = allocate(self.msite, self.params, self.state, now)
        for r in results:
            self.results[r.dev_id] = r
            if not r.write:
                continue
            ma = r.current_ma if r.enabled else 0
            if r.dev_id == self.local_id and self.evse is not None:
                self.evse.limits.manager_ma = ma
                if r.phases != self.evse.sm.phases() and self.evse.phase_switching:
                    self.evse.request_phases(r.phases)
            else:
                sp = self.setpoints.get(r.dev_id)
                if sp is None:  # a wallbox the manager writes for the first time
                    sp = self.setpoints[r.dev_id] = [False, 0, 3]
                sp[0] = r.enabled
                sp[1] = ma
                sp[2] = r.phases
        self.cycles += 1
        return results

    def _observation_setpoints(self):
        """Observation mode: the manager writes nothing; the device layer writes only what a user set through
        MQTT ctl (setpoint.<dev_id>.cur/ena/phs in the volatile store)."""
        self.setpoints.clear()
        vol = self.store.volatile
        for cp in self.msite.chargepoints:
            if cp.dev_id == self.local_id:
                continue  # ctl steers the local charge point through its overrides
            cur = vol.get("setpoint.%s.cur" % cp.dev_id)
            ena = vol.get("setpoint.%s.ena" % cp.dev_id)
            phs = vol.get("setpoint.%s.phs" % cp.dev_id)
            if cur is None and ena is None and phs is None:
                continue
            # enable None: phs alone, the driver writes only the phase wish; phases 0: no wish
            self.setpoints[cp.dev_id] = [None if cur is None and ena is None else ena != 0,
                                         cur if cur is not None else cp.min_ma, phs or 0]

    def device_view(self, dev_id):
        r = self.results.get(dev_id)
        return {} if r is None else {"alloc_ma": r.current_ma if r.enabled else 0,
                                     "reason": model.REASON_NAMES[r.reason]}

    def _overloaded(self):
        """A grid reading newer than the last cycle's is above the house connection: cut now, not next cycle."""
        p = self.params
        limit = p.max_total_ma * p.percent // 100
        for dev_id, role in self.meters:
            if role != ROLE_GRID:
                continue
            d = self.site.device(dev_id)
            if d is None or d.reading.updated_ms is None or d.reading.updated_ms == self._grid_seen_ms:
                return False
            cur = d.reading.current_ma
            return cur[0] > limit or cur[1] > limit or cur[2] > limit
        return False

    async def run(self):
        while True:
            self.cycle(time.ticks_ms())
            waited = 0
            while waited < CYCLE_MS and not self._overloaded():  # fast down: an overload skips the wait
                await asyncio.sleep_ms(FAST_CHECK_MS)
                waited += FAST_CHECK_MS
