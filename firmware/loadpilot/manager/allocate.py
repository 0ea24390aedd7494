# The Charging Manager's decision for one cycle (every ~3 s). Pure: no I/O, no clock, no logging.
#
#   budget per grid phase (budget.py) -> order (priority, charging, waiting) -> candidates and PV shares
#   (pv.py: PV decides who may start, so it runs first) -> stage 1: minimum current by priority ->
#   stage 2: fair share of the rest, tier by tier -> slow up / fast down, pauses, 1p/3p wishes.
# See docs/manager.md for the reasons and the decisions behind them.
from .model import (NO_CAR, CHARGING, PV_ONLY, PV_MIN, UNLIMITED, R_OWN_MAX, R_IMBALANCE, R_GROUP,
                    R_FAILSAFE, R_PRIORITY_PAUSE, R_PAUSE_HOLD, R_DISABLED, R_NO_CAR, R_OBSERVE,
                    R_CAR_DRAW, R_RAMP, R_FUSE, R_EVSE_TOTAL, R_SCHEDULE, R_SHEDDING, R_OVERDRAW, R_OPERATOR,
                    R_AUTH)
from micropython import const

from .state import elapsed
from . import budget as _budget
from . import pv as _pv


def allocate(site, params, state, now_ms):
    """Decide every chargepoint's current. Returns state.results (reused objects: copy what you keep)."""
    cps = site.chargepoints
    state.sync(cps)
    if not params.load_management:
        _observe(cps, state)
        return state.results
    _track_sessions(cps, state, now_ms)
    _budget.compute(site, params, state, now_ms)
    _sort(cps, params, state, now_ms)
    _candidates(cps, params, state, now_ms)
    _stage_minimum(cps, params, state)
    _stage_share(cps, params, state)
    _finish(cps, params, state, now_ms)
    return state.results


def _observe(cps, state):
    # Observation mode: report, never write.
    for i in range(len(cps)):
        cp = cps[i]
        s = state.slots[i]
        r = s.result
        r.current_ma = s.last_ma
        r.phases = cp.phases
        r.enabled = cp.enabled
        r.reason = R_OBSERVE
        r.write = False


def _track_sessions(cps, state, now_ms):
    for i in range(len(cps)):
        cp = cps[i]
        s = state.slots[i]
        if not cp.comm_ok:
            if s.silent_since is None:
                s.silent_since = now_ms
            continue
        s.silent_since = None
        new_car = cp.plugins != s.plugins
        s.plugins = cp.plugins
        if cp.state == NO_CAR or new_car:
            if s.plugged_since is not None:
                # Unplugged (or unplugged and a new car plugged in since the last cycle): the session's pauses,
                # timers and phase wishes end with it, and the new car starts as if this slot had seen it empty.
                s.reset()
        if cp.state != NO_CAR:
            if s.plugged_since is None:
                s.plugged_since = now_ms
                s.wait_since = now_ms
            if cp.state == CHARGING:
                s.idle = False


def _before(a, b):
    """Does slot a come before slot b? Higher priority; then charging within its turn, then waiting
    (longest first), then charging past its turn (round robin), then cars that do not draw."""
    if a.prio != b.prio:
        return a.prio > b.prio
    if a.rank != b.rank:
        return a.rank < b.rank
    return a.wait_ms > b.wait_ms


_IN_TURN = const(0)
_WAITING = const(1)
_TURN_OVER = const(2)
_IDLE = const(3)


def _sort(cps, params, state, now_ms):
    slots = state.slots
    order = state.order
    turn = params.rotate_after_ms
    settle = params.draw_settle_ms
    for i in range(len(cps)):
        s = slots[i]
        cp = cps[i]
        s.prio = cp.priority
        s.wait_ms = 0
        if s.last_ma > 0 and s.charge_since is not None:
            age = elapsed(now_ms, s.charge_since)
            if cp.state != CHARGING and age >= settle:
                s.rank = _IDLE  # offered current for a while but does not draw it (full?)
            elif turn and age >= turn:
                s.rank = _TURN_OVER
            else:
                s.rank = _IN_TURN
        elif s.idle:
            s.rank = _IDLE  # stopped while not drawing: it never displaces a car that charges
        else:
            s.rank = _WAITING
            if s.wait_since is not None:
                s.wait_ms = elapsed(now_ms, s.wait_since)
    # Insertion sort in place: stable, no allocation, 25 entries at most.
    for i in range(1, len(order)):
        x = order[i]
        j = i - 1
        while j >= 0 and _before(slots[x], slots[order[j]]):
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = x


def _candidates(cps, params, state, now_ms):
    slots = state.slots
    surplus = state.surplus_w
    for i in state.order:
        cp = cps[i]
        s = slots[i]
        s.alloc = s.alloc if not cp.comm_ok else 0
        s.cand = False
        s.granted = False
        s.frozen = True
        s.hi = cp.max_ma
        s.hi_reason = R_OWN_MAX
        s.wish = 0
        if not cp.comm_ok:
            s.reason = R_FAILSAFE
            continue
        if not cp.enabled:
            s.reason = R_DISABLED
            continue
        if cp.state == NO_CAR:
            s.reason = R_NO_CAR
            continue
        if not cp.authorized:
            s.reason = R_AUTH
            continue
        if cp.max_ma < cp.min_ma:
            s.reason = R_OWN_MAX
            continue
        if s.pause_since is not None:
            if elapsed(now_ms, s.pause_since) < params.min_pause_ms:
                s.reason = R_PAUSE_HOLD
                if cp.pv_mode == PV_ONLY or cp.pv_mode == PV_MIN:
                    s.wish = _pv.phase_wish(cp, s, params, surplus) if cp.can_switch_phases else 0
                continue
            s.pause_since = None
        s.cand = True
        # A metered car that settled below its offer frees the rest for others (dynamic mode only).
        m = cp.measured_ma
        if (params.has_grid_meter and m is not None and cp.state == CHARGING and s.last_ma > 0
                and s.charge_since is not None and elapsed(now_ms, s.charge_since) >= params.draw_settle_ms):
            draw = m[0]
            if m[1] > draw:
                draw = m[1]
            if m[2] > draw:
                draw = m[2]
            # Cap when it leaves a full margin unused; stay capped (hysteresis) while it leaves half of it.
            margin = params.draw_margin_ma
            cap = draw + margin
            if cap <= s.last_ma or (s.draw_capped and draw + margin // 2 < s.last_ma):
                if cap < cp.min_ma:
                    cap = cp.min_ma
                if cap < s.hi:
                    s.hi = cap
                    s.hi_reason = R_CAR_DRAW
        if cp.pv_mode == PV_ONLY or cp.pv_mode == PV_MIN:
            if cp.can_switch_phases:
                s.wish = _pv.phase_wish(cp, s, params, surplus)
            surplus = _pv.share(cp, s, params, now_ms, surplus)


def _over_budget(k, p, need, state):
    """0 if phase p takes need more (when the car loads it: k), else the reason it cannot."""
    if not k:
        return 0
    load = state.load[p]
    budget = state.budget[p]
    if load + need <= budget:
        return 0
    return R_PRIORITY_PAUSE if load and need <= budget else state.budget_reason[p]


def _fits(s, need, state, gfree, imb_allowed):
    """0 if adding need mA to slot s keeps every limit, else the reason it does not."""
    why = _over_budget(s.k1, 0, need, state) or _over_budget(s.k2, 1, need, state) or \
        _over_budget(s.k3, 2, need, state)
    if why:
        return why
    if gfree is not None:
        if (s.k1 and gfree[0] < need) or (s.k2 and gfree[1] < need) or (s.k3 and gfree[2] < need):
            return R_GROUP
    if imb_allowed >= 0 and s.k1 + s.k2 + s.k3 == 1:
        base = state.base
        load = state.load
        x1 = base[0] + load[0] + need * s.k1
        x2 = base[1] + load[1] + need * s.k2
        x3 = base[2] + load[2] + need * s.k3
        if max(x1, x2, x3) - min(x1, x2, x3) > imb_allowed:
            return R_IMBALANCE
    return 0


def _imbalance_allowed(params, state):
    """-1 = not checked; else the largest phase imbalance we may produce."""
    if not params.max_imbalance_ma:
        return -1
    base = state.base
    spread = max(base[0], base[1], base[2]) - min(base[0], base[1], base[2])
    # House load alone may already exceed the limit: then we must not make it worse.
    return params.max_imbalance_ma if params.max_imbalance_ma > spread else spread


def _stage_minimum(cps, params, state):
    slots = state.slots
    load = state.load
    load[0] = load[1] = load[2] = 0
    imb = _imbalance_allowed(params, state)
    # Measured budgets jitter: a car that is not charging starts only with a margin above its minimum,
    # so a budget hovering at the threshold does not start and stop it every pause period.
    margin = params.start_margin_ma if params.has_grid_meter and not state.meter_failsafe else 0
    for i in state.order:
        s = slots[i]
        if not s.cand:
            continue
        cp = cps[i]
        need = cp.min_ma
        gfree = state.group_free.get(cp.group) if cp.group else None
        why = _fits(s, need if s.last_ma else need + margin, state, gfree, imb)
        if why:
            s.cand = False
            s.reason = why
            continue
        s.alloc = need
        s.granted = True
        load[0] += need * s.k1
        load[1] += need * s.k2
        load[2] += need * s.k3
        if gfree is not None:
            gfree[0] -= need * s.k1
            gfree[1] -= need * s.k2
            gfree[2] -= need * s.k3
    free = state.free_min
    for p in range(3):
        free[p] = state.budget[p] - load[p]


def _stage_share(cps, params, state):
    """Higher priorities receive the rest first: water-fill one priority tier after the other."""
    slots = state.slots
    n = len(cps)
    prev = None
    for i in state.order:
        s = slots[i]
        if not s.granted or s.prio == prev:
            continue
        prev = s.prio
        for j in range(n):
            x = slots[j]
            x.frozen = not (x.granted and x.prio == prev)
        _fill(cps, params, state)


def _fill(cps, params, state):
    """Water-filling: raise every unfrozen car by the same step until a limit or its own cap binds."""
    slots = state.slots
    budget = state.budget
    load = state.load
    base = state.base
    step = params.step_ma if params.step_ma > 0 else 1
    imb = _imbalance_allowed(params, state)
    n = len(cps)
    gcount = state.group_count
    while True:
        n1 = n2 = n3 = 0
        s1 = s2 = s3 = 0  # single-phase cars per grid phase (imbalance)
        for g in gcount:
            c = gcount[g]
            c[0] = c[1] = c[2] = 0
        active = 0
        delta = UNLIMITED
        for i in range(n):
            s = slots[i]
            if s.frozen:
                continue
            active += 1
            n1 += s.k1
            n2 += s.k2
            n3 += s.k3
            if s.k1 + s.k2 + s.k3 == 1:
                s1 += s.k1
                s2 += s.k2
                s3 += s.k3
            head = s.hi - s.alloc
            if head < delta:
                delta = head
            g = cps[i].group
            if g and g in state.group_free:
                c = gcount.get(g)
                if c is None:
                    c = [0, 0, 0]
                    gcount[g] = c
                c[0] += s.k1
                c[1] += s.k2
                c[2] += s.k3
        if not active:
            return
        if n1:
            delta = min(delta, (budget[0] - load[0]) // n1)
        if n2:
            delta = min(delta, (budget[1] - load[1]) // n2)
        if n3:
            delta = min(delta, (budget[2] - load[2]) // n3)
        for g in gcount:
            c = gcount[g]
            f = state.group_free[g]
            for p in range(3):
                if c[p]:
                    delta = min(delta, f[p] // c[p])
        if imb >= 0:
            cap = min(base[0] + load[0], base[1] + load[1], base[2] + load[2]) + imb
            if s1:
                delta = min(delta, (cap - base[0] - load[0]) // s1)
            if s2:
                delta = min(delta, (cap - base[1] - load[1]) // s2)
            if s3:
                delta = min(delta, (cap - base[2] - load[2]) // s3)
        delta = delta // step * step
        if delta > 0:
            for i in range(n):
                s = slots[i]
                if s.frozen:
                    continue
                s.alloc += delta
                load[0] += delta * s.k1
                load[1] += delta * s.k2
                load[2] += delta * s.k3
                g = cps[i].group
                if g:
                    f = state.group_free.get(g)
                    if f is not None:
                        f[0] -= delta * s.k1
                        f[1] -= delta * s.k2
                        f[2] -= delta * s.k3
            continue
        # Nothing more for someone: freeze the cars at their cap or on a saturated limit.
        for i in range(n):
            s = slots[i]
            if s.frozen:
                continue
            if s.hi - s.alloc < step:
                s.frozen = True
                s.reason = s.hi_reason
                continue
            why = _saturated(s, cps[i], state, step, n1, n2, n3, s1, s2, s3, gcount, imb)
            if why:
                s.frozen = True
                s.reason = why


def _saturated(s, cp, state, step, n1, n2, n3, s1, s2, s3, gcount, imb):
    budget = state.budget
    load = state.load
    if s.k1 and budget[0] - load[0] < n1 * step:
        return state.budget_reason[0]
    if s.k2 and budget[1] - load[1] < n2 * step:
        return state.budget_reason[1]
    if s.k3 and budget[2] - load[2] < n3 * step:
        return state.budget_reason[2]
    g = cp.group
    if g:
        c = gcount.get(g)
        f = state.group_free.get(g)
        if c is not None and f is not None:
            if (s.k1 and f[0] < c[0] * step) or (s.k2 and f[1] < c[1] * step) or (s.k3 and f[2] < c[2] * step):
                return R_GROUP
    if imb >= 0 and s.k1 + s.k2 + s.k3 == 1:
        base = state.base
        cap = min(base[0] + load[0], base[1] + load[1], base[2] + load[2]) + imb
        if (s.k1 and cap - base[0] - load[0] < s1 * step) or (s.k2 and cap - base[1] - load[1] < s2 * step) \
                or (s.k3 and cap - base[2] - load[2] < s3 * step):
            return R_IMBALANCE
    return 0


def _finish(cps, params, state, now_ms):
    slots = state.slots
    for i in range(len(cps)):
        cp = cps[i]
        s = slots[i]
        r = s.result
        if not cp.comm_ok:
            # We cannot reach it: report what we count it at, write nothing. Once its own fail-safe timeout
            # has passed it runs at its fail-safe current: that is what it draws when it answers again.
            if elapsed(now_ms, s.silent_since) >= params.wallbox_fail_safe_after_ms:
                s.last_ma = s.alloc
            r.current_ma = s.alloc
            r.phases = cp.phases
            r.enabled = s.alloc > 0
            r.reason = R_FAILSAFE
            r.write = False
            continue
        target = s.alloc if s.cand else 0
        reason = s.reason
        s.draw_capped = s.cand and s.hi_reason == R_CAR_DRAW
        if target:
            if target >= cp.max_ma:
                reason = R_OWN_MAX
            # Slow up: at most ramp_up_ma more than last cycle (a start begins at the minimum). Down is immediate.
            up = s.last_ma + params.ramp_up_ma
            if up < cp.min_ma:
                up = cp.min_ma
            if target > up:
                target = up
                reason = R_RAMP
            if s.last_ma == 0:
                s.charge_since = now_ms
        else:
            if s.last_ma > 0 and cp.state != NO_CAR and cp.enabled:
                # a running charge stops for lack of power: hold the pause for min_pause_ms (a box the user
                # disabled is not paused: enabling it again lets it start in the next cycle)
                s.pause_since = now_ms
                s.wait_since = now_ms
                s.idle = cp.state != CHARGING
            s.charge_since = None
        s.last_ma = target
        r.current_ma = target
        r.enabled = target > 0
        r.reason = reason
        r.write = True
        r.phases = _phases(cp, s, params, state, now_ms)


def _phases(cp, s, params, state, now_ms):
    """Automatic 1p/3p: a wish must hold for its delay, and switches are at least an interval apart."""
    if not cp.can_switch_phases or cp.state == NO_CAR or not cp.enabled:
        s.want_phases = 0
        s.want_since = None
        return s.phases_out or cp.phases
    wish = s.wish
    if cp.pv_mode != PV_ONLY and cp.pv_mode != PV_MIN:
        wish = _grid_phase_wish(cp, s, params, state)
    if wish == 0 or wish == cp.phases or wish == s.phases_out:
        s.want_phases = 0
        s.want_since = None
        return s.phases_out or cp.phases
    if wish != s.want_phases:
        s.want_phases = wish
        s.want_since = now_ms
    delay = params.phase_up_delay_ms if wish == 3 else params.phase_down_delay_ms
    if elapsed(now_ms, s.want_since) < delay:
        return s.phases_out or cp.phases
    if s.last_switch is not None and elapsed(now_ms, s.last_switch) < params.phase_switch_interval_ms:
        return s.phases_out or cp.phases
    s.last_switch = now_ms
    s.phases_out = wish
    s.want_phases = 0
    s.want_since = None
    return wish


def _grid_phase_wish(cp, s, params, state):
    """Without PV: 1p when a 3p car cannot get its minimum but would on its first phase alone;
    back to 3p (only if we switched it down) when the minimum fits on all three phases again."""
    free = state.free_min
    w0 = cp.wiring[0] - 1
    if cp.phases == 3:
        if s.last_ma > 0 or s.reason not in _SHORTAGE:
            return 0
        return 1 if free[w0] >= cp.min_ma else 0
    if s.phases_out != 1:
        return 0
    for p in range(3):
        f = free[p]
        if p == w0 and s.last_ma > 0:
            f += cp.min_ma  # its own minimum is in the load already
        if f < cp.min_ma:
            return 0
    return 3


_SHORTAGE = (R_FUSE, R_EVSE_TOTAL, R_SCHEDULE, R_SHEDDING, R_OVERDRAW, R_FAILSAFE, R_PRIORITY_PAUSE, R_OPERATOR)
