# PV surplus decisions per chargepoint: start/stop with delays, the share of the surplus, and the wish
# to switch between 1 and 3 phases. Called in priority order; each car takes its share off the surplus.
from .model import PV_ONLY, R_PV
from .state import elapsed


def share(cp, s, params, now_ms, surplus_w):
    """Set s.cand / s.hi for a PV car; return the surplus left for the next car."""
    v = params.voltage_v
    ph = 1 if cp.phases == 1 else 3
    avail = surplus_w if surplus_w > 0 else 0
    pv_ma = avail * 1000 // (ph * v)
    s.pv_ma = pv_ma
    lo = cp.min_ma
    if cp.pv_mode == PV_ONLY:
        start = params.pv_start_ma or lo
        stop = params.pv_stop_ma or lo
        if s.last_ma == 0:
            s.pv_below_since = None
            if pv_ma >= start:
                if s.pv_above_since is None:
                    s.pv_above_since = now_ms
                if elapsed(now_ms, s.pv_above_since) < params.pv_start_delay_ms:
                    s.cand = False
                    s.reason = R_PV
                    return surplus_w
            else:
                s.pv_above_since = None
                s.cand = False
                s.reason = R_PV
                return surplus_w
        else:
            s.pv_above_since = None
            if pv_ma < stop:
                if s.pv_below_since is None:
                    s.pv_below_since = now_ms
                long_below = elapsed(now_ms, s.pv_below_since) >= params.pv_stop_delay_ms
                charged_enough = s.charge_since is None or \
                    elapsed(now_ms, s.charge_since) >= params.pv_min_charge_ms
                if long_below and charged_enough:
                    s.cand = False
                    s.reason = R_PV
                    return surplus_w
            else:
                s.pv_below_since = None
    # PV_MIN, or PV_ONLY running: the surplus share, never below the minimum current.
    hi = pv_ma
    if hi < lo:
        hi = lo
    if hi < s.hi:
        s.hi = hi
        s.hi_reason = R_PV
    return surplus_w - s.hi * ph * v // 1000


def phase_wish(cp, s, params, surplus_w):
    """1 or 3 if the surplus calls for a different phase count, else 0."""
    v = params.voltage_v
    avail = surplus_w if surplus_w > 0 else 0
    need3 = (params.pv_start_ma or cp.min_ma) * 3 * v // 1000
    if cp.phases == 3 and avail < cp.min_ma * 3 * v // 1000:
        return 1
    if cp.phases == 1 and avail >= need3:
        return 3
    return 0
