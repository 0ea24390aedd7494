# The board's own charge point as a device like any other wallbox: poll() puts its state and reading into the
# Site, apply(setpoint) is the one writer of its limits. Outside controllers are inputs to this one path: a
# Power Brain master (8093/8094, 8087, 8086), an OMCCI energy manager (HEMS limit 1000, 124), MQTT ctl and
# overrides reach EvseControl through the command layer, and apply() folds them together with the Charging
# Manager's set-point. Nothing else writes the EVSE task's limits.
import asyncio
import time
from micropython import const

from loadpilot.codes import ST_CHARGING, ST_ERROR, ST_PLUGGED, ST_VENTILATION, ST_WAITING
from loadpilot.evse import pilot
from loadpilot.evse.control import master_limit
from loadpilot.evse.state_machine import CHARGING, ERROR, IDLE

PERIOD_MS = const(100)   # set-points reach the CP within this; the CP tick itself runs every 10 ms
MIN_CURRENT_MA = const(6000)  # IEC 61851: below this a pilot cannot signal a current
_OFF = (False, 0, 0)  # the set-point of a car that may not charge (waiting for authorization)


class LocalEvse:
    is_evse = True

    def __init__(self, evse, control, store, log):
        self.evse = evse
        self.control = control
        self.store = store
        self.log = log
        self._sp_phases = 0  # the manager's phase wish last passed on (a wish is passed on once, when it changes)

    # ---- sense

    def status(self):
        ev = self.evse
        st = ev.sm.state
        if st == ERROR:
            return ST_ERROR
        if st == CHARGING:
            return ST_VENTILATION if ev.cp_state == pilot.D else ST_CHARGING
        if st == IDLE:
            return ST_WAITING
        return ST_PLUGGED

    def poll(self, state, now_ms):
        """Status from the state machine; power and energy from S0 meter 1 once it counts pulses, else the
        signalled current on the phases in use while the contactor is closed (a box without a meter is counted
        at what it offers, as the manager's static rule does)."""
        ev = self.evse
        sm = ev.sm
        state.set_status(self.status())
        n = sm.phases()
        state.phases = n
        state.can_switch_phases = ev.phase_switching
        r = state.reading
        s0 = ev.s0[0] if ev.s0 else None
        cur = r.current_ma
        if s0 is not None and s0.pulses:
            volt = self.store.get("s0_1_voltage")
            per_phase = s0.power_w * 1000 // (volt * n) if n else 0
            v = r.voltage_v
            v[0] = v[1] = v[2] = volt
            r.power_w = s0.power_w
            r.import_wh = s0.energy_wh
            r.own_energy = True
        else:
            per_phase = ev.limits.ma if sm.contactor else 0
            per_phase = per_phase if per_phase >= MIN_CURRENT_MA or not per_phase else MIN_CURRENT_MA
            r.power_w = per_phase * n * r.voltage_v[0] // 1000
        cur[0] = per_phase
        cur[1] = per_phase if n == 3 else 0
        cur[2] = per_phase if n == 3 else 0
        r.phase_w = None
        r.power_va = r.power_w
        r.updated_ms = now_ms
        state.com_err = False  # its task runs: it is never offline

    # ---- act

    def apply(self, sp, safe_ma, now_ms):
        """sp = (enable, current_ma, phases) from the manager, or None before its first decision (and in
        observation mode): then safe_ma, what no limit forbids (manager/budget.start_limit_ma)."""
        c = self.control
        s = self.store
        ev = self.evse
        pb_ma, pb_fs = master_limit(now_ms, c.pb_access_ms, s.get("fail_safe_duration") * 1000,
                                    s.get("fail_safe_current"), c.cur_limit_ma)
        om_ma, om_fs = master_limit(now_ms, c.omcci_access_ms, s.get("omcci_comm_timeout") * 1000,
                                    s.get("omcci_safe_current"), c.hems_ma)
        if pb_fs != c.pb_fail_safe:
            self.log.warn("evse", "Power Brain master %s: limit %d mA" % (
                "silent, fail-safe" if pb_fs else "back", pb_ma))
            c.pb_fail_safe = pb_fs
        if om_fs != c.omcci_fail_safe:
            self.log.warn("evse", "OMCCI master %s: limit %d mA" % (
                "silent, safe current" if om_fs else "back", om_ma if om_ma is not None else -1))
            c.omcci_fail_safe = om_fs
        limit = pb_ma
        if om_ma is not None and (limit is None or om_ma < limit):
            limit = om_ma
        lim = ev.limits
        lim.modbus_ma = limit
        lim.fixed_ma = c.fixed_ma
        if sp is None:
            lim.manager_ma = safe_ma
            self._sp_phases = 0
        else:
            lim.manager_ma = sp[1] if sp[0] else 0
            if sp[2] != self._sp_phases and sp[2] in (1, 3):
                self._sp_phases = sp[2]
                if sp[2] != ev.sm.phases() and ev.phase_switching:
                    ev.request_phases(sp[2])
        ev.set_enabled(c.enable and c.available and not (limit is not None and limit < MIN_CURRENT_MA))
        if c.phases_request is not None:
            res = ev.request_phases(c.phases_request)
            self.log.info("evse", "switch to %d phase(s): %s" % (c.phases_request, res))
            c.phases_request = None
        if c.wakeup_s is not None:
            ev.disconnect_cp(c.wakeup_s)
            c.wakeup_s = None
        for i, m in enumerate(ev.s0):
            ppk = s.get("s0_%d_pulses_per_kwh" % (i + 1))
            if m.pulses_per_kwh != ppk:
                m.set_pulses_per_kwh(ppk)

    def lost(self):
        pass

    def info(self):
        return {}


class LocalTask:
    """Runs the local charge point's poll and apply on the Site's state of its dev_id, every PERIOD_MS."""

    def __init__(self, driver, site, setpoints):
        self.driver = driver
        self.site = site
        self.setpoints = setpoints
        self.authorizer = None  # sessions/auth.Authorizer when authorization is on (app.py)

    def step(self, now_ms):
        site = self.site
        st = site.device(site.local_id) if site.local_id is not None else None
        if st is None:  # the board's charge point has no dev_id (E1 is a remote box): it stays at safe limits
            self.driver.apply(None, 0, now_ms)
            return
        self.driver.poll(st, now_ms)
        sp = self.setpoints.get(site.local_id)
        a = self.authorizer
        if a is not None:  # its own car's plug and unplug, seen at once: a new car never gets the last one's set-point
            a.observe(site.local_id, st.status, now_ms, st.plugins)
            if not a.allowed(site.local_id):
                sp = _OFF
        self.driver.apply(sp, st.safe_ma, now_ms)
        site.version += 1

    async def run(self):
        while True:
            self.step(time.ticks_ms())
            await asyncio.sleep_ms(PERIOD_MS)
