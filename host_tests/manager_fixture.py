"""A fixed 25-chargepoint site and a deterministic driver for it. Runs on CPython and on MicroPython, so
the same cycles can be compared between the two and benchmarked on the binary (tools/bench/manager.py)."""
from loadpilot.manager import (Chargepoint, Site, Params, State, allocate, PLUGGED, CHARGING, NO_CAR,
                               REASON_NAMES)

WIRINGS = ((1, 2, 3), (2, 3, 1), (3, 1, 2))


def build(n=25):
    cps = []
    for i in range(n):
        cp = Chargepoint("E%d" % (i + 1), min_ma=6000 + (i % 3) * 1000, max_ma=16000 + (i % 2) * 16000,
                         phases=1 if i % 4 == 1 else 3, wiring=WIRINGS[i % 3], priority=1 + i % 3,
                         group=i % 3, pv_mode=i % 4, fail_safe_ma=6000, can_switch_phases=(i % 5 == 0))
        cp.state = CHARGING
        cp.own_max_ma = 10000 + (i * 1700) % 22000  # what the car itself takes at most (physics)
        cp.measured_ma = [0, 0, 0]
        cps.append(cp)
    site = Site(cps)
    site.hour = 10
    p = Params()
    p.max_total_ma = 100000
    p.has_grid_meter = True
    p.reserve_ma = 2000
    p.max_total_evse_ma = 80000
    p.max_imbalance_ma = 20000
    p.imbalance_incl_house = True
    p.groups = {1: (32000, 32000, 32000), 2: (40000, 40000, 40000)}
    p.schedule = ((7, 90000, 90000, 90000), (22, 100000, 100000, 100000))
    p.shedding_offset_ma = (5000, 5000, 5000)
    return site, p, State()


def physics(site, state, k):
    """Cars draw min(offer, own max); house load and PV follow k; one box drops off for a while."""
    cps = site.chargepoints
    grid = [20000 + (k * 37) % 9000, 15000 + (k * 53) % 12000, 18000 + (k * 29) % 7000]
    pv_ma = (k * 211) % 30000  # PV per phase
    for i in range(len(cps)):
        cp = cps[i]
        cp.comm_ok = not (i == 7 and 40 <= k % 200 < 90)
        if i == 11:
            cp.state = NO_CAR if (k // 60) % 2 else CHARGING
        offer = state.slots[i].last_ma if state.slots else 0
        d = offer if offer < cp.own_max_ma else cp.own_max_ma
        m = cp.measured_ma
        for j in range(3):
            m[j] = d if j < cp.phases else 0
        for j in range(cp.phases):
            grid[cp.wiring[j] - 1] += d
    site.shedding_active = (k // 50) % 4 == 3
    site.grid_ma = None if k % 97 == 96 else [grid[0] - pv_ma, grid[1] - pv_ma, grid[2] - pv_ma]
    site.grid_w = None
    return site


def run(cycles=300, start_k=0, record=True):
    """Drive the site for `cycles` 3 s cycles; returns [[current, phases, reason] per chargepoint] per cycle."""
    site, p, state = build()
    out = []
    for k in range(start_k, start_k + cycles):
        physics(site, state, k)
        res = allocate(site, p, state, k * 3000)
        if record:
            out.append([[r.current_ma, r.phases, REASON_NAMES[r.reason]] for r in res])
    return out
