# The Charging Manager cycle: reads the site snapshot and the configuration, runs the pure allocation
# (manager/allocate.py), and hands the result out: the local charge point's manager limit, set-points for
# the other wallboxes (the driver layer writes them), and the reason each chargepoint got its current.
import asyncio
import time

from loadpilot.manager import model
from loadpilot.manager.allocate import allocate
from loadpilot.manager.state import State

CYCLE_MS = 2000
ROLE_CONSUMPTION = 1
ROLE_GENERATION = 2
ROLE_GRID = 3

# site status (1 waiting .. 6 offline) -> manager car state
_CAR_STATE = {1: model.NO_CAR, 2: model.PLUGGED, 3: model.CHARGING, 4: model.CHARGING}


class ManagerCycle:
    def __init__(self, store, site, log, evse=None, local_id=None):
        self.store = store
        self.site = site
        self.log = log
        self.evse = evse
        self.local_id = local_id
        self.state = State()
        self.params = model.Params()
        self.msite = model.Site()
        self.setpoints = {}  # dev_id -> (enabled, current_ma, phases): what the driver layer should write
        self.results = {}    # dev_id -> result dict, for the views
        self.cycles = 0
        self._grid_seen_ms = None  # updated_ms of the grid reading the manager saw last
        self.build()
        store.subscribe(self._changed)

    def _changed(self, key):
        if key == "devices":
            self.build()

    def build(self):
        """Chargepoints from the configuration: at boot and when devices change."""
        cps = []
        for d in self.store.get("devices"):
            if d["dev_id"][0] != "E" or not d.get("device_enabled", True):
                continue
            cp = model.Chargepoint(d["dev_id"], min_ma=d["min_charging_cur"], max_ma=d["max_charging_cur"],
                                   priority=d["prio"])
            cps.append(cp)
        self.msite.chargepoints = cps
        self.meters = [(d["dev_id"], d.get("role", 0)) for d in self.store.get("devices") if d["dev_id"][0] == "M"]

    def _fresh(self, dev, now):
        r = dev.reading
        return r.updated_ms is not None and time.ticks_diff(now, r.updated_ms) < self.params.grid_timeout_ms

    def _fill(self, now):
        s = self.store
        p = self.params
        p.load_management = s.get("lb_enabled")
        p.max_total_ma = s.get("max_total_current")
        p.percent = s.volatile.get("max_total_cur_prc")
        p.reserve_ma = s.get("reserve_current")
        p.max_total_evse_ma = s.get("max_total_evse_current")
        p.max_imbalance_ma = s.get("max_imbalance_current")
        p.imbalance_incl_house = s.get("imbalance_add_home")
        p.grid_timeout_ms = s.get("meter_timeout_s") * 1000
        p.wallbox_fail_safe_after_ms = s.get("fail_safe_duration") * 1000
        p.grid_fail_safe_ma = s.get("grid_fail_safe_current")
        ms = self.msite
        ms.grid_ma = None
        ms.pv_w = None
        p.has_grid_meter = False
        for dev_id, role in self.meters:
            d = self.site.device(dev_id)
            if role == ROLE_GRID:
                p.has_grid_meter = True
                # only a new reading counts; the manager holds the last one for grid_timeout_ms by itself
                if d is not None and d.reading.updated_ms is not None and d.reading.updated_ms != self._grid_seen_ms:
                    self._grid_seen_ms = d.reading.updated_ms
                    ms.grid_ma = d.reading.current_ma
            elif role == ROLE_GENERATION and d is not None and self._fresh(d, now):
                ms.pv_w = abs(d.reading.power_w)
        lt = time.localtime()
        ms.hour = lt[3] if lt[0] >= 2024 else None  # an unset clock has no hour for the schedule
        for cp in ms.chargepoints:
            d = self.site.device(cp.dev_id)
            local = cp.dev_id == self.local_id
            fresh = local or (d is not None and self._fresh(d, now))
            cp.comm_ok = fresh and (d is None or d.status != 6)
            cp.state = _CAR_STATE.get(d.status, model.NO_CAR) if d is not None else model.NO_CAR
            if local and self.evse is not None:
                cp.phases = self.evse.sm.phases()
                cp.can_switch_phases = self.evse.phase_switching
            cp.measured_ma = d.reading.current_ma if (d is not None and fresh and
                                                       d.reading.updated_ms is not None) else None

    def cycle(self, now):
        self._fill(now)
        results = allocate(self.msite, self.params, self.state, now)
        for r in results:
            self.results[r.dev_id] = r.as_dict()
            if not r.write:
                continue
            ma = r.current_ma if r.enabled else 0
            if r.dev_id == self.local_id and self.evse is not None:
                self.evse.limits.manager_ma = ma
                if r.phases != self.evse.sm.phases() and self.evse.phase_switching:
                    self.evse.request_phases(r.phases)
            else:
                self.setpoints[r.dev_id] = (r.enabled, ma, r.phases)
        self.cycles += 1
        return results

    def device_view(self, dev_id):
        r = self.results.get(dev_id)
        return {} if r is None else {"alloc_ma": r["current_ma"], "reason": r["reason"]}

    async def run(self):
        while True:
            self.cycle(time.ticks_ms())
            await asyncio.sleep_ms(CYCLE_MS)
