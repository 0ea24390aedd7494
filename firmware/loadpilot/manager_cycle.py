# The Charging Manager cycle: reads the Site (readings and comm state of every device) and the configuration,
# runs the pure allocation (manager/allocate.py), and writes the outcome back: each wallbox's decision and the
# seven site totals into the Site (what every reporter reads), and set-points for the drivers (each driver's
# apply() is the one writer to its box, the local charge point included). Configuration goes into Params only
# when it changes, and results are read from the manager's reused objects, so a steady-state cycle allocates
# nothing here either.
import asyncio
import time

from loadpilot.codes import (ROLE_CONSUMPTION, ROLE_EV, ROLE_GENERATION, ROLE_GRID, ROLE_STORAGE_ALL,
                             ROLE_STORAGE_HOME, ST_OFFLINE, ST_WAITING, T_CONSUMERS, T_EVSE_AVAILABLE, T_EVSE_USED,
                             T_FAULT, T_GENERATORS, T_GRID, T_PV_SURPLUS)
from loadpilot.manager import model
from loadpilot.manager.allocate import allocate
from loadpilot.manager.budget import start_limit_ma
from loadpilot.manager.state import State, elapsed

CYCLE_MS = 2000
FAST_CHECK_MS = 100
VOLTAGE_V = 230  # nominal, for the totals the manager computes in mA (budget, surplus, fault)

# site status (1 waiting .. 6 offline) -> manager car state
_CAR_STATE = {1: model.NO_CAR, 2: model.PLUGGED, 3: model.CHARGING, 4: model.CHARGING}
_PV_MODE = {"off": model.PV_OFF, "pv_only": model.PV_ONLY, "min_pv": model.PV_MIN, "now": model.PV_NOW}
_PAUSED = (model.R_PRIORITY_PAUSE, model.R_PAUSE_HOLD, model.R_PV)
_GRID_ROLES = (ROLE_GRID,)  # module-level tuples: a tuple built in the cycle would allocate
_CONSUMER_ROLES = (ROLE_CONSUMPTION, ROLE_EV)
_GENERATOR_ROLES = (ROLE_GENERATION,)
# settings the allocation depends on: a change drops every set-point to its start limit and decides again at once
_MANAGER_KEYS = ("lb_enabled", "max_total_current", "reserve_current", "max_total_evse_current",
                 "max_imbalance_current", "imbalance_add_home", "meter_timeout_s", "fail_safe_duration",
                 "grid_fail_safe_current", "cm_schedule", "shedding_enabled", "shedding_active_level",
                 "shedding_offsets", "group_limits", "dlm_operator_limit")


def _wiring(text):
    # "231": wallbox L1 on grid L2, L2 on L3, L3 on L1; anything else: straight
    if isinstance(text, str) and len(text) == 3 and sorted(text) == ["1", "2", "3"]:
        return (int(text[0]), int(text[1]), int(text[2]))
    return (1, 2, 3)


def chargepoint_configs(devices, local_id, local_max_ma):
    """The wallboxes the manager steers, as device config dicts: the enabled E devices, and the board's own
    charge point with default settings when the device list does not name it."""
    out = [d for d in devices if d["dev_id"][0] == "E" and d.get("device_enabled", True)]
    if local_id is not None and not any(d["dev_id"] == local_id for d in devices):
        out.insert(0, {"dev_id": local_id, "min_charging_cur": 6000, "max_charging_cur": local_max_ma, "prio": 1})
    return out


class ManagerCycle:
    def __init__(self, store, site, log, shed_input=None, setpoints=None, overrides=None, local_max_ma=32000,
                 authorizer=None):
        self.store = store
        self.authorizer = authorizer  # sessions/auth.Authorizer, or None: every car may charge
        self.site = site
        self.log = log
        self.shed_input = shed_input  # the board's load_shed input, or None
        self.overrides = overrides if overrides is not None else {}  # dev_id -> override_device flags/mamps
        self.local_max_ma = local_max_ma
        self.state = State()
        self.params = model.Params()
        self.msite = model.Site()
        self.setpoints = setpoints if setpoints is not None else {}  # dev_id -> [enabled, current_ma, phases]
        self.cycles = 0
        self._grid_seen_ms = None  # updated_ms of the grid reading the manager saw last
        self._hour_check_ms = None  # ticks_ms when the local hour is read next
        self._last_cycle_ms = None
        self._redecide = False  # a setting changed: decide now instead of at the end of the cycle
        self.soft = None  # soft_meter.SoftMeter: the energy of the wallboxes without a meter, counted each cycle
        self.history = None  # power_history.PowerHistory (HTTP on): the Dashboard plot's minutes, fed each cycle
        self.build()
        store.subscribe(self._changed)

    def _changed(self, key):
        if key == "devices":
            self.build()
            return
        self._apply_config()
        if key in _MANAGER_KEYS:
            self.setpoints.clear()  # a lowered limit holds at once, not one cycle later
            self._redecide = True

    def build(self):
        """Chargepoints and meters from the configuration: at boot and when devices change. Until the next
        decision every wallbox falls back to its start limit (set-points cleared)."""
        cps = []
        self.max_ma = []  # configured maximum per chargepoint (an override lowers cp.max_ma below it)
        self.prio = []  # configured priority per chargepoint (a charging user's priority replaces it)
        self.phases = []  # configured phases per chargepoint (a user's RFID may set 1 or 3 for a transaction)
        devices = self.store.get("devices")
        for d in chargepoint_configs(devices, self.site.local_id, self.local_max_ma):
            cp = model.Chargepoint(d["dev_id"], min_ma=d["min_charging_cur"], max_ma=d["max_charging_cur"],
                                   phases=d.get("phases", 3), wiring=_wiring(d.get("wiring")), priority=d["prio"],
                                   group=d.get("group", 0), pv_mode=_PV_MODE.get(d.get("pv_mode"), model.PV_OFF),
                                   fail_safe_ma=d.get("fail_safe_current", 6000))
            cps.append(cp)
            self.max_ma.append(cp.max_ma)
            self.prio.append(cp.priority)
            self.phases.append(cp.phases)
        self.msite.chargepoints = cps
        self.setpoints.clear()
        self.meters = [(d["dev_id"], d.get("role", 0)) for d in devices if d["dev_id"][0] == "M"]
        self._apply_config()
        self._redecide = True

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
        p.percent = s.volatile.get("max_total_cur_prc")
        self.site.min_pause_s = p.min_pause_ms // 1000
        self._read_inputs()
        self._start_limits()

    def _start_limits(self):
        """Each wallbox's limit until the manager decides for it (DeviceState.safe_ma): at boot, after a
        reconfiguration, and every cycle, since the percent, the schedule and shedding move it."""
        cps = self.msite.chargepoints
        others = len(cps) > 1
        a = self.authorizer
        for cp in cps:
            d = self.site.device(cp.dev_id)
            if d is not None:
                # a box that waits for authorization offers nothing, not even before the manager decides
                d.safe_ma = start_limit_ma(cp, self.params, self.msite, others) \
                    if a is None or a.allowed(cp.dev_id) else 0

    def _fresh(self, dev, now):
        r = dev.reading
        return r.updated_ms is not None and time.ticks_diff(now, r.updated_ms) < self.params.grid_timeout_ms

    def _read_inputs(self):
        ms = self.msite
        ms.shedding_active = self.shed_input is not None and self._shed_level is not None and \
            self.shed_input.value() == self._shed_level
        now = time.ticks_ms()
        if self._hour_check_ms is None or time.ticks_diff(now, self._hour_check_ms) >= 0:
            # reading the clock allocates a tuple: only at the next hour boundary (the schedule's unit)
            lt = time.localtime()
            ms.hour = lt[3] if lt[0] >= 2024 else None  # an unset clock has no hour for the schedule
            wait_ms = ((59 - lt[4]) * 60 + 60 - lt[5]) * 1000 if ms.hour is not None else 60000
            self._hour_check_ms = time.ticks_add(now, wait_ms)

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
            elif (role == ROLE_STORAGE_HOME or role == ROLE_STORAGE_ALL) and self._fresh(d, now):
                ms.storage_w = r.power_w
        self._read_inputs()
        cps = ms.chargepoints
        for i in range(len(cps)):
            cp = cps[i]
            d = self.site.device(cp.dev_id)
            fresh = d is not None and self._fresh(d, now)
            cp.comm_ok = fresh and d.status != ST_OFFLINE
            cp.state = _CAR_STATE.get(d.status, model.NO_CAR) if d is not None else model.NO_CAR
            if d is not None:
                cp.plugins = d.plugins  # a new car since the last cycle, even if the box was never seen empty
            if d is not None and d.phases is not None:
                cp.phases = d.phases
                cp.can_switch_phases = d.can_switch_phases
            else:
                cp.phases = self.phases[i]  # the setting (an RFID's used_phases may replace it: _override)
            cp.measured_ma = d.reading.current_ma if fresh else None
            self._override(cp, i, d)
            a = self.authorizer
            if a is not None:
                if d is not None:
                    a.observe(cp.dev_id, d.status, now, d.plugins)  # plug-in and unplug start or end an authorization
                cp.authorized = a.allowed(cp.dev_id)
                up = a.prio_of(cp.dev_id)  # the charging user's priority, while that user charges (users.md)
                cp.priority = self.prio[i] if up is None else up
            else:
                cp.authorized = True

    def _override(self, cp, i, d):
        """override_device for this transaction: C disables charging, mamps lowers the maximum; both end when
        the car is unplugged (reference/http-api.md). Set with no car plugged in, they wait for the next one."""
        o = self.overrides.get(cp.dev_id)
        cp.enabled = True
        cp.max_ma = self.max_ma[i]
        if o is None:
            return
        if d is not None and cp.comm_ok:
            # the car left (seen empty, or another car plugged in since): the transaction's overrides end
            if d.status == ST_WAITING or o.get("car", d.plugins) != d.plugins:
                if o.get("plugged"):
                    del self.overrides[cp.dev_id]
                    return
            else:
                o["plugged"] = True
                o["car"] = d.plugins
        if o["no_charging"]:
            cp.enabled = False
        if o["mamps"] is not None and o["mamps"] < cp.max_ma:
            cp.max_ma = o["mamps"]
        ph = o.get("phases")
        if ph is not None and (d is None or d.phases is None):  # a box that reports its phases knows better
            cp.phases = ph

    def cycle(self, now):
        self._redecide = False
        if self._last_cycle_ms is not None:
            self.site.cycle_ms = time.ticks_diff(now, self._last_cycle_ms)
        self._last_cycle_ms = now
        self._fill(now)
        if self.soft is not None:  # before allocate: the last decision is what the boxes drew since then
            self.soft.step(self.msite.chargepoints, now)
        observe = not self.params.load_management
        if observe:
            self._observation_setpoints()
        results = allocate(self.msite, self.params, self.state, now)
        slots = self.state.slots
        for i in range(len(results)):
            r = results[i]
            ma = r.current_ma if r.enabled else 0
            d = self.site.device(r.dev_id)
            if d is not None and not observe:
                d.alloc_ma = ma
                d.enabled = r.enabled
                d.want_phases = r.phases
                d.reason = r.reason
                s = slots[i]
                d.paused = r.reason in _PAUSED and s.pause_since is not None
                d.pause_ms = elapsed(now, s.pause_since) if d.paused else 0
            if not r.write:
                continue
            sp = self.setpoints.get(r.dev_id)
            if sp is None:  # a wallbox the manager writes for the first time
                sp = self.setpoints[r.dev_id] = [False, 0, 3]
            sp[0] = r.enabled
            sp[1] = ma
            sp[2] = r.phases
        self._start_limits()
        self._totals(now, observe)
        if self.history is not None:
            self.history.sample(now)
        self.site.version += 1
        self.cycles += 1
        return results

    def _observation_setpoints(self):
        """Observation mode: the manager writes nothing; the device layer writes only what a user set through
        MQTT ctl (setpoint.<dev_id>.cur/ena/phs in the volatile store). ctl steers the local charge point
        through its overrides (EvseControl)."""
        self.setpoints.clear()
        vol = self.store.volatile
        for cp in self.msite.chargepoints:
            if cp.dev_id == self.site.local_id:
                continue
            cur = vol.get("setpoint.%s.cur" % cp.dev_id)
            ena = vol.get("setpoint.%s.ena" % cp.dev_id)
            phs = vol.get("setpoint.%s.phs" % cp.dev_id)
            if cur is None and ena is None and phs is None:
                continue
            # enable None: phs alone, the driver writes only the phase wish; phases 0: no wish. An
            # override_device C or mamps (cp.enabled, cp.max_ma) holds over the ctl set-point
            phase_only = cur is None and ena is None
            cur = cur if cur is not None else cp.min_ma
            on = ena != 0 and cp.enabled and cp.authorized  # a car waiting for authorization gets nothing
            sp = [None if phase_only else on, cur if cur < cp.max_ma else cp.max_ma, phs or 0]
            self.setpoints[cp.dev_id] = sp
            d = self.site.device(cp.dev_id)
            if d is not None:
                if sp[0] is not None:
                    d.enabled = sp[0]
                    d.alloc_ma = sp[1] if sp[0] else 0
                if phs:
                    d.want_phases = phs
                d.reason = model.R_OBSERVE

    # ---- the seven site totals (SunSpec model 213 under the ID, get_dev_info params); docs/architecture.md

    def _totals(self, now, observe):
        site = self.site
        t = site.totals
        grid = t[T_GRID]
        _clear(grid)
        n = self._sum_role(grid, _GRID_ROLES, False)
        grid.updated_ms = now if n else None
        cons = t[T_CONSUMERS]
        _clear(cons)
        n = self._sum_role(cons, _CONSUMER_ROLES, False)
        used = t[T_EVSE_USED]
        _clear(used)
        for cp in self.msite.chargepoints:  # the wallboxes that answer: used power, and consumers too
            d = site.device(cp.dev_id)
            if d is not None and not d.com_err and d.reading.updated_ms is not None:
                _add(used, d.reading, False)
                _add(cons, d.reading, False)
                n += 1
        cons.updated_ms = now if n else None
        used.updated_ms = now
        gen = t[T_GENERATORS]
        _clear(gen)
        n_gen = self._sum_role(gen, _GENERATOR_ROLES, True)
        gen.updated_ms = now if n_gen else None
        st = self.state
        sur = t[T_PV_SURPLUS]
        if observe or not (self.params.has_grid_meter or n_gen):
            sur.updated_ms = None  # no meter can show a surplus, or the manager does not compute one
        else:
            _from_power(sur, st.surplus_w if st.surplus_w > 0 else 0, now)  # importing: no surplus
        avail = t[T_EVSE_AVAILABLE]
        fault = t[T_FAULT]
        if observe:
            avail.updated_ms = None
            fault.updated_ms = None
            site.avail_evse_w = None
            return
        _from_currents(avail, st.budget[0], st.budget[1], st.budget[2], now)
        site.avail_evse_w = avail.power_w
        f1 = f2 = f3 = 0
        cps = self.msite.chargepoints
        for i in range(len(cps)):
            if not cps[i].comm_ok:  # what a silent wallbox may still draw is reserved for it: fault power
                s = st.slots[i]
                f1 += s.alloc * s.k1
                f2 += s.alloc * s.k2
                f3 += s.alloc * s.k3
        _from_currents(fault, f1, f2, f3, now)

    def _sum_role(self, total, roles, generation):
        n = 0
        for dev_id, role in self.meters:
            if role not in roles:
                continue
            d = self.site.device(dev_id)
            if d is None or d.com_err or d.reading.updated_ms is None:
                continue
            _add(total, d.reading, generation)
            n += 1
        return n

    def device_view(self, dev_id):
        d = self.site.device(dev_id)
        if d is None or not d.is_evse:
            return {}
        return {"alloc_ma": d.alloc_ma, "reason": model.REASON_NAMES[d.reason], "start_ma": d.safe_ma}

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
        # a (re)started manager has decided nothing yet: every wallbox is at its start limit until the first cycle
        self.setpoints.clear()
        self._last_cycle_ms = None
        await asyncio.sleep_ms(FAST_CHECK_MS)  # let the local charge point report its car before deciding
        try:
            while True:
                self.cycle(time.ticks_ms())
                waited = 0
                # fast down: an overload, a changed setting or an authorized car leaving skips the wait
                while waited < CYCLE_MS and not self._redecide and not self._overloaded() and \
                        (self.authorizer is None or not self.authorizer.sweep(self.site, time.ticks_ms())):
                    await asyncio.sleep_ms(FAST_CHECK_MS)
                    waited += FAST_CHECK_MS
        finally:
            self.setpoints.clear()  # a manager that stopped deciding leaves every box at its start limit


def _clear(t):
    c = t.current_ma
    c[0] = c[1] = c[2] = 0
    v = t.voltage_v
    v[0] = v[1] = v[2] = VOLTAGE_V
    t.phase_w = None
    t.power_w = 0
    t.power_va = 0
    t.import_wh = 0
    t.export_wh = 0


def _add(t, r, generation):
    """Add reading r into total t; a generator counts as a positive figure whichever way its meter is fitted."""
    c = t.current_ma
    rc = r.current_ma
    w = r.power_w
    if generation and w < 0:
        c[0] -= rc[0]
        c[1] -= rc[1]
        c[2] -= rc[2]
        w = -w
    else:
        c[0] += rc[0]
        c[1] += rc[1]
        c[2] += rc[2]
    t.voltage_v[0] = r.voltage_v[0]
    t.voltage_v[1] = r.voltage_v[1]
    t.voltage_v[2] = r.voltage_v[2]
    t.power_w += w
    t.power_va += r.power_va if r.power_va >= 0 else -r.power_va
    t.import_wh += r.import_wh
    t.export_wh += r.export_wh


def _from_currents(t, l1, l2, l3, now):
    _clear(t)
    c = t.current_ma
    c[0] = l1 if l1 > 0 else 0
    c[1] = l2 if l2 > 0 else 0
    c[2] = l3 if l3 > 0 else 0
    t.power_w = (c[0] + c[1] + c[2]) * VOLTAGE_V // 1000
    t.power_va = t.power_w
    t.updated_ms = now


def _from_power(t, w, now):
    _clear(t)
    per_phase = w * 1000 // (3 * VOLTAGE_V)
    c = t.current_ma
    c[0] = c[1] = c[2] = per_phase
    t.power_w = w
    t.power_va = w if w >= 0 else -w
    t.updated_ms = now
