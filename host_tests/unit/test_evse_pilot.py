import pytest

from loadpilot.evse import pilot
from loadpilot.evse.pilot import A, B, C, D, E, F, DIODE_FAULT


@pytest.mark.parametrize("ma,cpct", [(6000, 1000), (16000, 2666), (32000, 5333), (51000, 8500),
                                     (63000, 8920), (80000, 9600)])
def test_duty_table(ma, cpct):
    assert pilot.duty_cpct_for_current(ma) == cpct


def test_below_6a_is_no_offer_and_above_80a_clamps():
    assert pilot.duty_cpct_for_current(5999) == 0
    assert pilot.duty_cpct_for_current(0) == 0
    assert pilot.duty_cpct_for_current(100000) == 9600


def test_the_ev_never_reads_more_than_offered():
    # the duty is rounded down, so a limit is never exceeded by the 0.01 % step. The two formulas meet with a
    # step at 51 A (the EV reads 85 %..84.4 % as 51 / 50.6 A), so between 51 and 52.5 A the EV reads up to
    # 1.5 A less than offered; everywhere else within one 0.01 % step
    prev = 0
    for ma in range(6000, 80001, 100):
        d = pilot.duty_cpct_for_current(ma)
        read = pilot.current_ma_for_duty(d)
        assert read <= ma
        if not 51000 < ma <= 52500:
            assert abs(read - ma) <= 25
            assert d >= prev
        prev = d
    assert pilot.current_ma_for_duty(10000) == 0 and pilot.current_ma_for_duty(0) == 0


@pytest.mark.parametrize("mv,state", [(12000, A), (9000, B), (6000, C), (3000, D), (0, E), (-12000, F),
                                      (11000, A), (8000, B), (5000, C), (2000, D), (-5000, E)])
def test_nominal_levels(mv, state):
    # from a far-away previous state so hysteresis does not apply
    prev = F if state != F else A
    assert pilot.classify_cp(mv, None, prev) == state


def test_hysteresis_holds_a_value_hovering_at_a_boundary():
    # 7500 mV is the B/C boundary; wobbling +-300 mV around it must not flap
    s = pilot.classify_cp(9000, None, A)
    assert s == B
    for mv in (7600, 7400, 7300, 7700, 7250, 7450):
        s = pilot.classify_cp(mv, None, s)
        assert s == B
    s = pilot.classify_cp(7000, None, s)  # clearly past the band
    assert s == C
    for mv in (7400, 7600, 7800, 7550):
        s = pilot.classify_cp(mv, None, s)
        assert s == C
    assert pilot.classify_cp(8000, None, s) == B


def test_hysteresis_every_boundary():
    for upper, lower, boundary in ((A, B, 10500), (B, C, 7500), (C, D, 4500), (D, E, 1500), (E, F, -6000)):
        assert pilot.classify_cp(boundary - 200, None, upper) == upper
        assert pilot.classify_cp(boundary + 200, None, lower) == lower
        assert pilot.classify_cp(boundary - 600, None, upper) == lower
        assert pilot.classify_cp(boundary + 600, None, lower) == upper


def test_diode_fault_only_with_pwm_and_a_vehicle():
    assert pilot.classify_cp(6000, -12000, C) == C
    assert pilot.classify_cp(6000, -11200, C) == C
    assert pilot.classify_cp(6000, -9000, C) == DIODE_FAULT
    assert pilot.classify_cp(9000, -6000, B) == DIODE_FAULT
    assert pilot.classify_cp(6000, None, C) == C          # no PWM: no check
    assert pilot.classify_cp(12000, 12000, A) == A        # no vehicle: nothing to check


@pytest.mark.parametrize("ohms,ma", [(100, 63000), (220, 32000), (680, 20000), (1500, 13000),
                                     (75, 63000), (300, 32000), (900, 20000), (2200, 13000),
                                     (None, 0), (10000, 0), (20, -1), (3300, -1)])
def test_pp_ranges(ohms, ma):
    assert pilot.pp_capacity_ma(ohms) == ma


def test_pp_from_pin_voltage():
    # 1 kOhm pull-up to 3.3 V: 680 ohm reads 3300*680/1680 = 1335 mV
    ohms = pilot.pp_ohms_from_mv(1335, 1000, 3300)
    assert 670 <= ohms <= 690
    assert pilot.pp_capacity_ma(ohms) == 20000
    assert pilot.pp_ohms_from_mv(3300, 1000, 3300) is None
    assert pilot.pp_capacity_ma(pilot.pp_ohms_from_mv(0, 1000, 3300)) == pilot.PP_INVALID
