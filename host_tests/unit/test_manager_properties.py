"""Property tests: over random sites the manager never allocates above any limit and never below a car's
minimum unless it pauses it (0). Each example runs a few cycles against a ground-truth house load, so the
dynamic-mode check is the physical one: real house load + what we allow <= the fuse (minus reserve)."""
from hypothesis import given, note, settings, strategies as st, HealthCheck

from loadpilot.manager import (Chargepoint, Site, Params, State, allocate, NO_CAR, PLUGGED, CHARGING,
                               R_FAILSAFE)

WIRINGS = [(1, 2, 3), (2, 3, 1), (3, 1, 2), (1, 3, 2), (2, 1, 3), (3, 2, 1)]


@st.composite
def chargepoints(draw, i):
    lo = draw(st.sampled_from([6000, 6000, 7000, 8000, 10000]))
    hi = draw(st.integers(lo, 32000))
    cp = Chargepoint("E%d" % (i + 1), min_ma=lo, max_ma=hi, phases=draw(st.sampled_from([1, 3, 3])),
                     wiring=draw(st.sampled_from(WIRINGS)), priority=draw(st.integers(1, 3)),
                     group=draw(st.integers(0, 2)), pv_mode=draw(st.integers(0, 3)),
                     fail_safe_ma=draw(st.sampled_from([0, 1, 6000, 10000])),
                     can_switch_phases=draw(st.booleans()))
    cp.state = draw(st.sampled_from([NO_CAR, PLUGGED, CHARGING, CHARGING]))
    cp.enabled = draw(st.integers(0, 9)) > 0
    cp.has_meter = draw(st.booleans())
    return cp


@st.composite
def sites(draw):
    n = draw(st.integers(1, 25))
    cps = [draw(chargepoints(i)) for i in range(n)]
    p = Params()
    p.max_total_ma = draw(st.integers(16000, 100000))
    p.percent = draw(st.sampled_from([100, 100, 80, 50, 0]))
    p.reserve_ma = draw(st.integers(0, 5000))
    p.max_total_evse_ma = draw(st.sampled_from([0, 0, 16000, 32000, 50000]))
    p.max_imbalance_ma = draw(st.sampled_from([0, 0, 4600, 10000, 20000]))
    p.imbalance_incl_house = draw(st.booleans())
    p.has_grid_meter = draw(st.booleans())
    if draw(st.booleans()):
        p.schedule = ((draw(st.integers(0, 11)), draw(st.integers(0, 63000)), draw(st.integers(0, 63000)),
                       draw(st.integers(0, 63000))),
                      (draw(st.integers(12, 23)), 63000, draw(st.integers(0, 63000)), 40000))
    p.shedding_offset_ma = (draw(st.integers(-16000, 0)), draw(st.integers(0, 16000)), 0)
    p.groups = {1: (draw(st.integers(0, 40000)), draw(st.integers(0, 40000)), draw(st.integers(0, 40000)))}
    if draw(st.booleans()):
        p.groups[2] = (16000, 16000, 16000)
    p.ramp_up_ma = draw(st.sampled_from([2000, 100000]))
    p.step_ma = draw(st.sampled_from([1, 100, 1000]))
    p.grid_timeout_ms = 6000
    p.grid_fail_safe_ma = draw(st.integers(0, 20000))
    site = Site(cps)
    site.hour = draw(st.sampled_from([None, 3, 9, 15, 23]))
    site.shedding_active = draw(st.booleans())
    site.storage_w = draw(st.integers(-3000, 3000))
    # Per cycle: house load per phase (may be negative: PV export), comm flags, meter silence, EV draw.
    cycles = []
    for _ in range(4):
        house = [draw(st.integers(-30000, 60000)) for _ in range(3)]
        comm = [draw(st.integers(0, 9)) > 0 for _ in range(n)]
        grid_silent = draw(st.integers(0, 5)) == 0
        draw_frac = [draw(st.integers(0, 100)) for _ in range(n)]
        cycles.append((house, comm, grid_silent, draw_frac))
    return site, p, cycles


def describe(site, p, cycles):
    cps = ["%s" % {k: v for k, v in vars(cp).items() if k != "measured_ma"} for cp in site.chargepoints]
    return "params=%s\nsite=%s\ncps=\n%s\ncycles=%s" % (
        vars(p), {k: v for k, v in vars(site).items() if k != "chargepoints"}, "\n".join(cps), cycles)


def grid_phases(cp):
    return [cp.wiring[0]] if cp.phases == 1 else list(cp.wiring)


def check(site, p, res, house_true, last_alloc, silent_draw, meter_failsafe, hour):
    """Independent check of one cycle's allocation."""
    limit = p.max_total_ma * p.percent // 100
    ev = [0, 0, 0]          # everything we allow on EVs, silent boxes at what we count them
    ours = [0, 0, 0]        # only what we allocate (a silent box alone may exceed a limit: not ours)
    groups = {}
    for cp, r in zip(site.chargepoints, res):
        assert r.phases in (1, 3)
        if not cp.comm_ok:
            assert r.write is False and r.reason == R_FAILSAFE
        else:
            assert r.write is True
            assert r.current_ma == 0 or cp.min_ma <= r.current_ma <= cp.max_ma, (cp.dev_id, r.as_dict())
            assert r.enabled == (r.current_ma > 0)
            if r.current_ma:
                assert cp.enabled and cp.state != NO_CAR
        for g in grid_phases(cp):
            ev[g - 1] += r.current_ma
            if cp.comm_ok:
                ours[g - 1] += r.current_ma
            if cp.group in p.groups:
                gl = groups.setdefault(cp.group, [[0, 0, 0], [0, 0, 0]])
                gl[0][g - 1] += r.current_ma
                if cp.comm_ok:
                    gl[1][g - 1] += r.current_ma
    sched = None
    if p.schedule:
        if hour is None:
            sched = [min(e[k] for e in p.schedule) for k in (1, 2, 3)]
        else:
            act = p.schedule[-1]
            for e in p.schedule:
                if e[0] <= hour:
                    act = e
            sched = list(act[1:])
    for k in range(3):
        cap = p.max_total_evse_ma or 10 ** 9
        if sched:
            cap = min(cap, sched[k])
        if meter_failsafe:
            cap = min(cap, p.grid_fail_safe_ma)
        shed = abs(p.shedding_offset_ma[k]) if site.shedding_active else 0
        if ours[k]:
            assert ev[k] <= cap - shed, ("ev cap", k, ev, cap, shed)
            if not p.has_grid_meter:
                assert ev[k] <= limit - p.reserve_ma - shed, ("static fuse", k, ev)
            elif not meter_failsafe:
                # Physical: true house load + everything EVs may now draw stays under the fuse minus reserve.
                assert house_true[k] + ev[k] <= limit - p.reserve_ma - shed, ("fuse", k, house_true, ev)
    for gid, (load, ours_g) in groups.items():
        for k in range(3):
            if ours_g[k]:
                assert load[k] <= p.groups[gid][k], ("group", gid, load)
    if p.max_imbalance_ma:
        base = [0, 0, 0]
        for cp, r in zip(site.chargepoints, res):
            if not cp.comm_ok:
                for g in grid_phases(cp):
                    base[g - 1] += r.current_ma
        if p.imbalance_incl_house and p.has_grid_meter and not meter_failsafe:
            est = [house_true[k] + silent_draw[k] for k in range(3)]  # what the manager can see
            base = [base[k] + est[k] for k in range(3)]
        allowed = max(p.max_imbalance_ma, max(base) - min(base))
        tot = [base[k] + ours[k] for k in range(3)]
        assert max(tot) - min(tot) <= allowed, ("imbalance", tot, allowed)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sites())
def test_never_above_any_limit_never_below_minimum(example):
    site, p, cycles = example
    note(describe(site, p, cycles))
    state = State()
    last = [0] * len(site.chargepoints)
    prev_ok = [True] * len(site.chargepoints)
    stopped = [False] * len(site.chargepoints)
    now = 0
    grid_seen = False
    for house, comm, grid_silent, frac in cycles:
        silent_draw = [0, 0, 0]
        ev_draw = [0, 0, 0]
        for i, cp in enumerate(site.chargepoints):
            cp.comm_ok = comm[i]
            # Metered cars draw any part of their offer; unmetered ones draw what they were offered. Only a
            # car in state C (CHARGING) draws at all, as on a real box.
            d = last[i] * frac[i] // 100 if cp.has_meter else last[i]
            if cp.state != CHARGING:
                d = 0
            cp.measured_ma = None
            if cp.has_meter:
                m = [0, 0, 0]
                for j in range(cp.phases):
                    m[j] = d
                cp.measured_ma = m
            for g in grid_phases(cp):
                ev_draw[g - 1] += d
                if not cp.comm_ok:
                    silent_draw[g - 1] += d
        if p.has_grid_meter and not grid_silent:
            site.grid_ma = [house[k] + ev_draw[k] for k in range(3)]
            grid_seen = True
            house_true = house
        else:
            site.grid_ma = None
            house_true = house_true if grid_seen else house
        meter_failsafe = p.has_grid_meter and (site.grid_ma is None)
        res = allocate(site, p, state, now)
        # Within the meter timeout the manager holds the last reading; the cycles here are 3 s apart and the
        # timeout is 6 s, so a single silent cycle holds and the true house is the held one.
        held = meter_failsafe and not state.meter_failsafe
        check(site, p, res, house_true, last, silent_draw, state.meter_failsafe if p.has_grid_meter else False,
              site.hour)
        assert held or not meter_failsafe or state.meter_failsafe
        for i, cp in enumerate(site.chargepoints):
            r = res[i]
            if cp.comm_ok and prev_ok[i]:
                # Slow up: at most ramp_up_ma more than last cycle (a start begins at the minimum).
                assert r.current_ma <= max(last[i] + p.ramp_up_ma, cp.min_ma), (last[i], r.as_dict())
                # A charge that stopped stays paused for the minimum pause time (300 s > these 12 s).
                if stopped[i]:
                    assert r.current_ma == 0, r.as_dict()
                if last[i] and not r.current_ma and cp.state != NO_CAR:
                    stopped[i] = True
            else:
                stopped[i] = False  # a silent box rejoins from scratch (it may have been unplugged)
            prev_ok[i] = cp.comm_ok
            if cp.comm_ok:
                last[i] = r.current_ma
        now += 3000
