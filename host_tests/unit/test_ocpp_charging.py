"""Schedule math of ocpp/charging.py (pure; the behaviour on the box is in integration/test_ocpp_charging_mp.py)."""
import pytest

from loadpilot.ocpp.charging import MAX_PROFILES, Profiles
from loadpilot.ocpp.core import FrameError, parse_time

T0 = parse_time("2026-11-26T10:00:00Z")


def prof(pid, purpose="TxDefaultProfile", stack=0, kind="Absolute", periods=((0, 10),), unit="A", **kw):
    sch = {"chargingRateUnit": unit,
           "chargingSchedulePeriod": [dict({"startPeriod": a, "limit": b}, **({"numberPhases": c[0]} if c else {}))
                                      for a, b, *c in periods]}
    for k in ("duration", "startSchedule"):
        if k in kw:
            sch[k] = kw.pop(k)
    p = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": sch}
    p.update(kw)
    return p


def test_absolute_periods_and_the_next_change():
    ps = Profiles(1)
    st = "2026-11-26T10:00:00Z"
    assert ps.set(1, prof(1, startSchedule=st, periods=((0, 10), (600, 16), (1200, 6))), None, T0)[0] == "Accepted"
    assert ps.limit(T0 - 1, None, None) == (None, T0)
    assert ps.limit(T0, None, None) == (10000, T0 + 600)
    assert ps.limit(T0 + 700, None, None) == (16000, T0 + 1200)
    assert ps.limit(T0 + 5000, None, None) == (6000, None)


def test_duration_valid_to_and_stack_levels():
    ps = Profiles(1)
    st = "2026-11-26T10:00:00Z"
    ps.set(1, prof(1, stack=0, startSchedule=st, periods=((0, 20),)), None, T0)
    ps.set(1, prof(2, stack=1, startSchedule=st, periods=((0, 8),), duration=300), None, T0)
    assert ps.limit(T0 + 10, None, None) == (8000, T0 + 300)  # the higher stack wins while it runs
    assert ps.limit(T0 + 300, None, None)[0] == 20000          # then the lower one again
    ps.set(1, prof(3, stack=2, startSchedule=st, periods=((0, 5),), validTo="2026-11-26T10:01:00Z"), None, T0)
    assert ps.limit(T0 + 10, None, None) == (5000, T0 + 60)
    assert ps.limit(T0 + 61, None, None)[0] == 8000


def test_recurring_daily_and_weekly():
    ps = Profiles(1)
    ps.set(0, prof(1, purpose="ChargePointMaxProfile", kind="Recurring", recurrencyKind="Daily",
                   startSchedule="2026-11-01T18:00:00Z", periods=((0, 6), (4 * 3600, 32))), None, T0)
    assert ps.limit(T0, None, None) == (32000, parse_time("2026-11-26T18:00:00Z"))
    assert ps.limit(parse_time("2026-11-26T19:00:00Z"), None, None)[0] == 6000
    w = Profiles(1)
    w.set(1, prof(1, kind="Recurring", recurrencyKind="Weekly", startSchedule="2026-11-23T00:00:00Z",
                  duration=86400, periods=((0, 7),)), None, T0)  # Mondays only
    assert w.limit(parse_time("2026-11-30T12:00:00Z"), None, None)[0] == 7000
    assert w.limit(T0, None, None) == (None, parse_time("2026-11-30T00:00:00Z"))


def test_relative_needs_the_transaction_and_tx_profile_overrides_default():
    ps = Profiles(1)
    ps.set(1, prof(1, kind="Relative", periods=((0, 12), (60, 20))), None, T0)
    assert ps.limit(T0, None, None)[0] is None
    assert ps.limit(T0 + 30, 7, T0) == (12000, T0 + 60)
    assert ps.set(1, prof(2, purpose="TxProfile", stack=0, periods=((0, 9),)), None, T0)[0] == "Rejected"  # no tx
    assert ps.set(1, prof(2, purpose="TxProfile", stack=0, periods=((0, 9),)), 7, T0)[0] == "Accepted"
    assert ps.limit(T0 + 90, 7, T0)[0] == 9000  # TxProfile replaces the default, even at a lower stack
    ps.set(0, prof(3, purpose="ChargePointMaxProfile", periods=((0, 8),)), None, T0)
    assert ps.limit(T0 + 90, 7, T0)[0] == 8000  # the charge point max caps it
    assert ps.end_tx() and ps.limit(T0 + 90, 7, T0)[0] == 8000
    assert ps.clear(pid=3) == "Accepted" and ps.limit(T0 + 90, 7, T0)[0] == 20000


def test_watts_to_amps_with_phases():
    ps = Profiles(1)
    ps.set(1, prof(1, unit="W", periods=((0, 11040, 3),)), None, T0)
    assert ps.limit(T0, None, None)[0] == 16000  # 11040 W / (230 V x 3)
    ps.set(1, prof(1, unit="W", periods=((0, 2300, 1),)), None, T0)
    assert ps.limit(T0, None, None)[0] == 10000


def test_rejected_and_malformed_change_nothing():
    ps = Profiles(1)
    ps.set(1, prof(1, periods=((0, 10),)), None, T0)
    for cid, p in ((1, prof(2, periods=((0, 10), (0, 5)))), (1, prof(2, periods=((5, 10),))),
                   (1, prof(2, periods=((0, -1),))), (2, prof(2)), (1, prof(2, purpose="ChargePointMaxProfile")),
                   (1, prof(2, kind="Recurring", startSchedule="2026-11-26T10:00:00Z")),
                   (1, prof(2, validFrom="2026-11-27T00:00:00Z", validTo="2026-11-26T00:00:00Z")),
                   (1, prof(2, periods=((0, 10, 4),)))):
        assert ps.set(cid, p, None, T0)[0] == "Rejected", p
    for p in (prof(2, purpose="Nope"), prof(2, unit="kW"), prof("x"), {"chargingProfileId": 2},
              prof(2, startSchedule="yesterday")):
        with pytest.raises(FrameError):
            ps.set(1, p, None, T0)
    assert [x.id for x in ps.items] == [1] and ps.limit(T0, None, None)[0] == 10000


def test_bounded_count_and_replacement():
    ps = Profiles(1)
    for i in range(MAX_PROFILES):
        assert ps.set(1, prof(i + 1, stack=i), None, T0)[0] == "Accepted"
    assert ps.set(1, prof(99, stack=50), None, T0)[0] == "Rejected"
    assert ps.set(1, prof(99, stack=3, periods=((0, 7),)), None, T0)[0] == "Accepted"  # same stack+purpose: replaces
    assert len(ps.items) == MAX_PROFILES
    assert ps.clear(purpose="TxDefaultProfile", stack=3) == "Accepted" and len(ps.items) == MAX_PROFILES - 1
    assert ps.clear(pid=12345) == "Unknown"


def test_composite_schedule():
    ps = Profiles(1)
    ps.set(1, prof(1, startSchedule="2026-11-26T10:00:00Z", periods=((0, 10), (600, 16))), None, T0)
    c = ps.composite(T0 + 300, 1200, False, None, None, 32000)
    assert c["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 10.0, "numberPhases": 3},
                                           {"startPeriod": 300, "limit": 16.0, "numberPhases": 3}]
    assert ps.composite(T0 - 100, 200, True, None, None, 32000)["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 22080, "numberPhases": 3}, {"startPeriod": 100, "limit": 6900, "numberPhases": 3}]


def test_stored_round_trip():
    ps = Profiles(1)
    ps.set(1, prof(1, periods=((0, 10),)), None, T0)
    ps.set(1, prof(2, purpose="TxProfile", stack=1, periods=((0, 6),)), 5, T0)
    back = Profiles(1, ps.stored())
    assert [x.id for x in back.items] == [1] and back.limit(T0 + 5, None, None)[0] == 10000
