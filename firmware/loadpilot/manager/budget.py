# Stage 0: how much current the EVs may draw per grid phase this cycle, and why it is that much.
from .model import (UNLIMITED, STORAGE_HOME, CHARGING, R_FUSE, R_EVSE_TOTAL, R_SCHEDULE, R_SHEDDING, R_OVERDRAW,
                    R_FAILSAFE, R_OPERATOR)
from .state import elapsed


def load_vector(s, cp):
    """Which grid phases the chargepoint loads (s.k1..k3 = 0/1) from its phases and wiring."""
    s.k1 = s.k2 = s.k3 = 0
    w = cp.wiring
    n = 1 if cp.phases == 1 else 3
    for j in range(n):
        g = w[j]
        if g == 1:
            s.k1 = 1
        elif g == 2:
            s.k2 = 1
        else:
            s.k3 = 1


def schedule_limit(schedule, hour, phase):
    """The active schedule entry's limit for grid phase 0..2; the lowest entry when the clock is unknown."""
    if not schedule:
        return UNLIMITED
    if hour is None:
        lo = UNLIMITED
        for e in schedule:
            if e[phase + 1] < lo:
                lo = e[phase + 1]
        return lo
    # The latest entry at or before this hour; before the first one, yesterday's latest entry holds.
    active = None
    latest = None
    for e in schedule:
        if e[0] <= hour and (active is None or e[0] > active[0]):
            active = e
        if latest is None or e[0] > latest[0]:
            latest = e
    return (active or latest)[phase + 1]


def silent_reserve(cp, s, params, now_ms):
    """Current a wallbox we cannot reach may draw: its last set-point until its own fail-safe
    timeout has passed, then its fail-safe current."""
    fs = cp.fail_safe_ma
    if fs == 1:  # the Power Brain convention: 1 = "the minimum charging current"
        fs = cp.min_ma
    if s.silent_since is None or elapsed(now_ms, s.silent_since) < params.wallbox_fail_safe_after_ms:
        if s.last_ma > fs:
            return s.last_ma
    return fs


def compute(site, params, state, now_ms):
    """Fill state.budget / budget_reason / base / group_free and state.surplus_w."""
    cps = site.chargepoints
    slots = state.slots
    v = params.voltage_v
    limit = params.max_total_ma * params.percent // 100
    house = state.house_ma
    grid = site.grid_ma
    dynamic = params.has_grid_meter
    fresh = False
    state.meter_failsafe = False
    if dynamic:
        if grid is not None:
            fresh = True
            state.grid_ok_ms = now_ms
            house[0] = grid[0]
            house[1] = grid[1]
            house[2] = grid[2]
        elif state.grid_ok_ms is None or elapsed(now_ms, state.grid_ok_ms) > params.grid_timeout_ms:
            state.meter_failsafe = True
    ev_w = 0
    for i in range(len(cps)):
        cp = cps[i]
        s = slots[i]
        load_vector(s, cp)
        if not cp.comm_ok:
            continue
        m = cp.measured_ma
        if m is not None:
            w = cp.wiring
            if fresh:
                for j in range(3):
                    house[w[j] - 1] -= m[j]
            ev_w += (m[0] + m[1] + m[2]) * v // 1000  # W per box: the site total stays a small int on 32 bit
        elif s.last_ma and cp.state == CHARGING:
            # No meter on this box: while it charges, assume it draws what we offered (the static-mode rule).
            # Subtracting it for a box that does not charge would hide real house load.
            if fresh:
                house[0] -= s.last_ma * s.k1
                house[1] -= s.last_ma * s.k2
                house[2] -= s.last_ma * s.k3
            ev_w += s.last_ma * (s.k1 + s.k2 + s.k3) * v // 1000
    # Overdraw: the grid current exceeded the limit -> take the excess off the budget for a while.
    od = state.overdraw_ma
    if state.overdraw_since is not None and elapsed(now_ms, state.overdraw_since) >= params.overdraw_hold_ms:
        state.overdraw_since = None
        od[0] = od[1] = od[2] = 0
    if fresh:
        for p in range(3):
            x = grid[p] - limit
            if x > 0:
                if x > od[p]:
                    od[p] = x
                if x > state.overdraw_max_ma:
                    state.overdraw_max_ma = x
                state.overdraw_since = now_ms
    budget = state.budget
    reason = state.budget_reason
    base = state.base
    shed = params.shedding_offset_ma
    evse_total = params.max_total_evse_ma
    operator = params.operator_evse_ma
    for p in range(3):
        if state.meter_failsafe:
            b = params.grid_fail_safe_ma
            r = R_FAILSAFE
        elif dynamic:
            b = limit - params.reserve_ma - house[p]
            r = R_FUSE
        else:
            b = limit - params.reserve_ma
            r = R_FUSE
        if evse_total and evse_total < b:
            b = evse_total
            r = R_EVSE_TOTAL
        x = operator[p]
        if x and x < b:
            b = x
            r = R_OPERATOR
        x = schedule_limit(params.schedule, site.hour, p)
        if x < b:
            b = x
            r = R_SCHEDULE
        if od[p] > 0:
            b -= od[p]
            r = R_OVERDRAW
        if site.shedding_active:
            x = shed[p]
            if x < 0:  # accept the UI's "-10 A" notation as well
                x = -x
            if x:
                b -= x
                r = R_SHEDDING
        budget[p] = b
        reason[p] = r
        base[p] = house[p] if (dynamic and params.imbalance_incl_house and not state.meter_failsafe) else 0
    # Group limits, then take off what silent wallboxes may draw (site and group).
    for gid in state.group_free:
        g = state.group_free[gid]
        g[0] = g[1] = g[2] = UNLIMITED
    for gid in params.groups:
        lim = params.groups[gid]
        g = state.group(gid)
        g[0] = lim[0]
        g[1] = lim[1]
        g[2] = lim[2]
    for i in range(len(cps)):
        cp = cps[i]
        if cp.comm_ok:
            continue
        s = slots[i]
        r = silent_reserve(cp, s, params, now_ms)
        s.alloc = r
        budget[0] -= r * s.k1
        budget[1] -= r * s.k2
        budget[2] -= r * s.k3
        base[0] += r * s.k1
        base[1] += r * s.k2
        base[2] += r * s.k3
        if cp.group:
            g = state.group_free.get(cp.group)
            if g is not None:
                g[0] -= r * s.k1
                g[1] -= r * s.k2
                g[2] -= r * s.k3
    # PV surplus: what would be exported if no car were charging (surplus-charging.md).
    if dynamic:
        if state.meter_failsafe:
            state.surplus_w = 0
        elif fresh:
            gw = site.grid_w
            if gw is None:
                gw = (grid[0] + grid[1] + grid[2]) * v // 1000
            sur = ev_w - gw
            st = site.storage_w
            if st > 0 or params.storage_role == STORAGE_HOME:
                sur += st  # storage charging is not consumption; home storage discharge is not surplus
            state.surplus_w = sur
    elif site.pv_w is not None:
        state.surplus_w = site.pv_w - (site.consumption_w or 0)
    else:
        state.surplus_w = 0


def start_limit_ma(cp, params, site, others):
    """What a chargepoint may offer before the manager has decided for it (at boot, after a reconfiguration,
    while the manager task restarts): what no limit forbids, without knowing the house load. The per-phase
    house connection (after the operator percent and the reserve), the wallbox total, the operator's
    per-phase limit (OMCCI 613-615), the schedule, load
    shedding, its group and its own maximum; with load management on and other wallboxes sharing the
    connection, also the lower of its minimum and its fail-safe current (docs/manager.md)."""
    if not cp.enabled:
        return 0  # override_device C: no charging this transaction
    lim = params.max_total_ma * params.percent // 100 - params.reserve_ma
    if params.max_total_evse_ma and params.max_total_evse_ma < lim:
        lim = params.max_total_evse_ma
    g = params.groups.get(cp.group) if cp.group else None
    shed = params.shedding_offset_ma
    base = lim
    for p in range(3):
        x = schedule_limit(params.schedule, site.hour, p)
        if base < x:
            x = base
        if g is not None and g[p] < x:
            x = g[p]
        if params.operator_evse_ma[p] and params.operator_evse_ma[p] < x:
            x = params.operator_evse_ma[p]
        if site.shedding_active:
            x -= shed[p] if shed[p] >= 0 else -shed[p]  # the UI's "-10 A" notation as well
        if x < lim:
            lim = x
    if cp.max_ma < lim:
        lim = cp.max_ma
    if params.load_management and others:
        fs = cp.fail_safe_ma
        if fs == 1:  # the Power Brain convention: 1 = "the minimum charging current"
            fs = cp.min_ma
        x = cp.min_ma if cp.min_ma < fs else fs
        if x < lim:
            lim = x
    return lim if lim > 0 else 0
