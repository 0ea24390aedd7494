"""Whole charging sessions through the pure state machine, with a virtual EV and a stepped clock."""
from hypothesis import given, settings, strategies as st

from loadpilot.evse.pilot import A, B, C, D, E, F, DIODE_FAULT, DUTY_HIGH, DUTY_OFF
from loadpilot.evse.state_machine import ChargeStateMachine, Config, STATE_NAMES, ERROR_NAMES

TICK = 10


class Rig:
    """The state machine plus a virtual EV: plugged in, it goes to C once it has seen PWM for react_ms and
    back to B once it has seen no PWM for react_ms (a stubborn EV ignores the stop signal)."""

    def __init__(self, feedback=False, **cfg):
        self.now = 0
        self.sm = ChargeStateMachine(Config(**cfg), now_ms=0)
        self.plugged = False
        self.wants = True
        self.stubborn = False
        self.react_ms = 200
        self.override = None  # force a CP reading (faults)
        self.rcd = False
        self.feedback = feedback
        self.welded = False
        self.offer = 16000
        self.enabled = True
        self.cp = A
        self._seen_since = 0
        self._seen_pwm = None
        self.history = []

    def _ev(self):
        if self.override is not None:
            return self.override
        if not self.plugged:
            return A
        d = self.sm.duty_cpct
        if d == DUTY_OFF:
            return self.cp if self.cp in (B, C) else B  # CP off: the EV sees -12 V, we cannot read it
        pwm = 0 < d < DUTY_HIGH
        if pwm != self._seen_pwm:
            self._seen_pwm = pwm
            self._seen_since = self.now
        settled = self.now - self._seen_since >= self.react_ms
        if self.cp == C:
            if settled and not pwm and not self.stubborn:
                return B
            if not self.wants:
                return B
            return C
        if settled and pwm and self.wants:
            return C
        return B

    def fb(self):
        if not self.feedback:
            return None
        return 1 if (self.sm.contactor or self.welded) else 0

    def tick(self):
        self.now += TICK
        self.cp = self._ev()
        sm = self.sm
        sm.step(self.now, self.cp, self.rcd, self.fb(), self.offer, self.enabled)
        self.history.append((self.now, self.cp, sm.state, sm.contactor, sm.duty_cpct, sm.phase_relay))
        return sm

    def run(self, ms):
        for _ in range(ms // TICK):
            self.tick()
        return self.sm

    def run_until(self, cond, limit_ms=10000):
        t0 = self.now
        while not cond(self.sm):
            assert self.now - t0 < limit_ms, "condition not reached: %s %s" % (STATE_NAMES[self.sm.state],
                                                                              self.sm.note)
            self.tick()
        return self.now - t0

    def state(self):
        return STATE_NAMES[self.sm.state]

    def error(self):
        return ERROR_NAMES[self.sm.error]


def charging_rig(**kw):
    r = Rig(**kw)
    r.run(100)
    r.plugged = True
    r.run_until(lambda sm: sm.contactor == 1)
    return r


def test_idle_outputs_no_power():
    r = Rig()
    sm = r.run(200)
    assert r.state() == "idle" and sm.duty_cpct == DUTY_HIGH and sm.contactor == 0


def test_plug_in_and_charge():
    r = Rig()
    r.run(100)
    r.plugged = True
    sm = r.tick()
    assert r.cp == B and r.state() == "connected"
    assert sm.duty_cpct == 2666 and sm.contactor == 0  # 16 A offered by PWM (rounded down)
    r.run_until(lambda sm: r.cp == C)
    # the contactor closes in the tick that sees C (PWM has been on longer than settle_ms)
    assert sm.contactor == 1 and r.state() == "charging"
    r.offer = 32000
    r.tick()
    assert sm.duty_cpct == 5333 and sm.contactor == 1


def test_leaving_c_opens_in_the_same_tick():
    r = charging_rig()
    r.wants = False  # the EV finishes by itself: C -> B
    sm = r.tick()
    assert r.cp == B and sm.contactor == 0 and r.state() == "connected"
    assert 0 < sm.duty_cpct < DUTY_HIGH  # still offering: the EV may ask again


def test_unplug_while_charging_opens_at_once():
    r = charging_rig()
    r.plugged = False
    sm = r.tick()
    assert r.cp == A and sm.contactor == 0 and r.state() == "idle" and sm.duty_cpct == DUTY_HIGH


def test_no_close_without_pwm_or_before_it_settled():
    r = Rig(settle_ms=100)
    r.enabled = False
    r.plugged = True
    r.react_ms = 0
    r.run(300)
    r.override = C  # an EV that goes to C on a constant +12 V
    sm = r.run(300)
    assert sm.contactor == 0 and sm.duty_cpct == DUTY_HIGH
    r.enabled = True
    sm = r.tick()
    assert 0 < sm.duty_cpct < DUTY_HIGH and sm.contactor == 0  # PWM just started: not yet
    r.run(50)
    assert sm.contactor == 0
    r.run(60)
    assert sm.contactor == 1


def test_pause_signals_first_then_opens_when_the_ev_stops():
    r = charging_rig()
    r.enabled = False
    sm = r.tick()
    assert sm.duty_cpct == DUTY_HIGH and sm.contactor == 1 and r.state() == "stopping"
    took = r.run_until(lambda sm: sm.contactor == 0)
    assert r.cp == B and r.state() == "connected"
    assert r.react_ms <= took <= r.react_ms + 2 * TICK
    # resume
    r.enabled = True
    r.run_until(lambda sm: sm.contactor == 1)
    assert r.state() == "charging"


def test_offer_below_6a_is_a_pause():
    r = charging_rig()
    r.offer = 5000
    sm = r.tick()
    assert sm.duty_cpct == DUTY_HIGH and r.state() == "stopping"
    r.run_until(lambda sm: sm.contactor == 0)


def test_resume_before_the_ev_reacted_keeps_charging():
    r = charging_rig()
    r.enabled = False
    r.run(50)
    r.enabled = True
    sm = r.tick()
    assert r.state() == "charging" and sm.contactor == 1 and 0 < sm.duty_cpct < DUTY_HIGH


def test_stubborn_ev_is_cut_after_the_stop_timeout():
    r = charging_rig(stop_timeout_ms=3000)
    r.stubborn = True
    r.enabled = False
    r.tick()
    t0 = r.now
    r.run_until(lambda sm: sm.contactor == 0)
    assert r.now - t0 == 3000  # opens in the tick where 3000 ms have passed
    assert r.sm.stop_timeouts == 1 and r.cp == C


def test_ventilation_state_d():
    r = Rig()
    r.plugged = True
    r.run(300)
    r.override = D
    sm = r.run(300)
    assert sm.contactor == 0 and "ventilation" in sm.note
    r2 = Rig(ventilation_allowed=True)
    r2.plugged = True
    r2.run(300)
    r2.override = D
    assert r2.run(50).contactor == 1
    # charging in C, then D without ventilation: open at once
    r3 = charging_rig()
    r3.override = D
    assert r3.tick().contactor == 0


def _fault_in(state_name, reading):
    if state_name == "idle":
        r = Rig()
        r.run(100)
    elif state_name == "connected":
        r = Rig()
        r.plugged = True
        r.wants = False
        r.run(300)
    elif state_name == "charging":
        r = charging_rig()
    else:  # stopping
        r = charging_rig()
        r.stubborn = True
        r.enabled = False
        r.run(100)
    assert r.state() == state_name
    r.override = reading
    sm = r.tick()
    return r, sm


def test_e_and_f_in_every_state_open_at_once_and_clear_on_a_or_b():
    for state_name in ("idle", "connected", "charging", "stopping"):
        for reading, err in ((E, "cp_short_e"), (F, "cp_state_f")):
            r, sm = _fault_in(state_name, reading)
            assert sm.contactor == 0 and r.state() == "error" and r.error() == err, (state_name, reading)
            assert sm.duty_cpct == DUTY_HIGH
            r.run(500)
            assert r.state() == "error"
            r.override = B
            r.tick()
            assert r.state() == "connected" and r.error() == "none"


def test_diode_fault_in_every_state_needs_an_unplug():
    for state_name in ("connected", "charging", "stopping"):
        r, sm = _fault_in(state_name, DIODE_FAULT)
        assert sm.contactor == 0 and r.error() == "diode_fault", state_name
        r.override = B
        r.run(500)
        assert r.error() == "diode_fault" and sm.contactor == 0
        r.override = A
        r.tick()
        assert r.state() == "idle" and r.error() == "none"


def test_rcd_trip_in_every_state():
    for state_name in ("idle", "connected", "charging", "stopping"):
        r, sm = _fault_in(state_name, None)
        r.rcd = True
        sm = r.tick()
        assert sm.contactor == 0 and r.error() == "rcd_trip", state_name
        r.plugged = False
        r.run(200)
        assert r.error() == "rcd_trip"  # A seen, but the RCD input is still tripped
        r.rcd = False
        r.plugged = True
        r.run(200)
        assert r.error() == "rcd_trip"  # released, but the vehicle was not unplugged since
        r.plugged = False
        r.tick()
        assert r.error() == "none" and r.state() == "idle"


def test_welded_contactor_latches_until_reset():
    r = charging_rig(feedback=True, feedback_grace_ms=300)
    r.welded = True
    r.plugged = False
    sm = r.tick()
    assert sm.contactor == 0 and r.error() == "none"  # within the grace time the relay may still release
    r.run(300)
    assert r.error() == "contactor_welded"
    r.welded = False  # even if the feedback later reads open, nothing clears it but reset
    r.run(500)
    r.plugged = True
    r.run(2000)
    assert r.error() == "contactor_welded" and sm.contactor == 0
    for _, _, _, contactor, _, _ in r.history[-200:]:
        assert contactor == 0
    sm.reset(r.now)
    r.run_until(lambda sm: sm.contactor == 1)
    assert r.state() == "charging"


def test_contactor_that_does_not_close_is_an_error():
    r = Rig(feedback=True, feedback_grace_ms=300)
    r.fb = lambda: 0  # coil broken: feedback never follows
    r.plugged = True
    r.run_until(lambda sm: sm.contactor == 1)
    r.run(310)
    assert r.error() == "contactor_did_not_close" and r.sm.contactor == 0
    r.plugged = False
    r.tick()
    assert r.error() == "none"


def test_phase_switch_sequence_and_minimum_interval():
    r = charging_rig(switch_when_plugged=True, phase_hold_ms=5000, min_switch_interval_ms=60000)
    sm = r.sm
    assert sm.phases() == 3 and sm.phase_relay == 0
    assert sm.request_phases(1, r.now) == "accepted"
    r.tick()
    assert r.state() == "stopping" and sm.duty_cpct == DUTY_HIGH and sm.contactor == 1
    r.run_until(lambda sm: sm.contactor == 0)
    assert r.state() == "cp_off" and sm.duty_cpct == DUTY_OFF and sm.phase_relay == 0
    t_off = r.now
    r.run_until(lambda sm: sm.phase_relay == 1)
    assert r.now - t_off == 5000
    t_first = r.now
    assert sm.contactor == 0 and sm.duty_cpct == DUTY_HIGH
    r.run_until(lambda sm: sm.contactor == 1)
    assert sm.phases() == 1 and r.state() == "charging"
    # the relay only ever changed while the contactor was open, with the CP off before it
    prev = None
    for h in r.history:
        if prev is not None and h[5] != prev[5]:
            assert h[3] == 0 and prev[3] == 0 and prev[4] == DUTY_OFF
        prev = h
    # a second request inside the minimum interval waits
    assert sm.request_phases(3, r.now) == "deferred"
    r.run(30000)
    assert sm.phases() == 1 and sm.contactor == 1 and sm.pending_phases() == 3
    r.run_until(lambda sm: sm.phase_relay == 0, limit_ms=200000)
    assert sm.phase_switches == 2
    assert r.now - t_first >= 60000  # the sequence started only once the interval had passed


def test_phase_switch_waits_for_unplug_by_default():
    r = charging_rig(phase_hold_ms=1000, min_switch_interval_ms=0)
    sm = r.sm
    assert sm.request_phases(1, r.now) == "deferred"
    r.run(5000)
    assert sm.phases() == 3 and sm.contactor == 1
    r.plugged = False
    r.tick()
    assert sm.contactor == 0 and sm.phases() == 3  # the relay waits until the contactor has surely released
    t_open = r.now
    r.run_until(lambda sm: sm.phases() == 1)
    assert r.now - t_open >= 100 and sm.duty_cpct == DUTY_HIGH and r.state() == "idle"  # no hold unplugged


def test_phase_switch_without_simulated_unplug_holds_constant_high():
    r = charging_rig(switch_when_plugged=True, phase_hold_ms=1000, simulate_unplug=False)
    r.sm.request_phases(1, r.now)
    r.run_until(lambda sm: sm.state == 4)
    assert r.sm.duty_cpct == DUTY_HIGH


def test_withdrawn_request_during_the_hold_keeps_the_relay():
    r = charging_rig(switch_when_plugged=True, phase_hold_ms=1000)
    r.sm.request_phases(1, r.now)
    r.run_until(lambda sm: sm.state == 4)
    assert r.sm.request_phases(3, r.now) == "unchanged"
    r.run(2000)
    assert r.sm.phase_relay == 0 and r.sm.phase_switches == 0


def test_wakeup_holds_cp_off_then_resumes():
    r = Rig()
    r.plugged = True
    r.wants = False  # a sleeping car stays in B
    r.run(300)
    sm = r.sm
    assert sm.request_wakeup(5000, r.now)
    r.tick()
    assert r.state() == "cp_off" and sm.duty_cpct == DUTY_OFF and sm.contactor == 0
    assert 4900 <= sm.wakeup_remaining_ms(r.now) <= 5000
    r.run(4900)
    assert r.state() == "cp_off"
    r.run(100)
    assert sm.duty_cpct != DUTY_OFF and sm.wakeup_remaining_ms(r.now) == 0
    r.wants = True  # woke up
    r.run_until(lambda sm: sm.contactor == 1)


def test_wakeup_while_charging_stops_first_and_zero_cancels():
    r = charging_rig()
    sm = r.sm
    sm.request_wakeup(10000, r.now)
    r.tick()
    assert r.state() == "stopping" and sm.contactor == 1
    r.run_until(lambda sm: sm.state == 4)
    assert sm.contactor == 0
    sm.request_wakeup(0, r.now)
    r.tick()
    assert r.state() == "connected"


def test_e_or_f_during_cp_off_is_expected_not_a_fault():
    r = Rig(phase_hold_ms=1000)
    r.plugged = True
    r.run(300)
    r.sm.request_wakeup(2000, r.now)
    r.tick()
    r.override = F  # CP at -12 V reads as F
    r.run(1000)
    assert r.error() == "none"
    r.override = None
    r.run(2000)
    assert r.error() == "none"


_reading = st.sampled_from([A, B, C, D, E, F, DIODE_FAULT])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_reading, st.booleans(), st.sampled_from([0, 1, None]), st.sampled_from([0, 5000, 16000]),
                          st.booleans(), st.sampled_from([None, 1, 3, "wake"])), max_size=120),
       st.booleans())
def test_invariants_under_random_inputs(steps, vent):
    sm = ChargeStateMachine(Config(switch_when_plugged=True, phase_hold_ms=200, min_switch_interval_ms=100,
                                   ventilation_allowed=vent, stop_timeout_ms=300))
    now = 0
    prev_contactor, prev_duty, prev_relay = 0, DUTY_HIGH, sm.phase_relay
    pwm_since = None
    for cp, rcd, fb, offer, enabled, req in steps:
        now += TICK
        if req in (1, 3):
            sm.request_phases(req, now)
        elif req == "wake":
            sm.request_wakeup(100, now)
        sm.step(now, cp, rcd, fb, offer, enabled)
        if sm.contactor:
            # closed only in C (or D with ventilation), with PWM on, no RCD and no error
            assert cp == C or (vent and cp == D)
            assert not rcd and sm.error == 0
            assert 0 < sm.duty_cpct < DUTY_HIGH or sm.state == 3  # stopping: no power signalled
            if not prev_contactor:
                assert 0 < prev_duty < DUTY_HIGH  # the EV saw PWM before we closed
        if sm.phase_relay != prev_relay:
            assert sm.contactor == 0 and prev_contactor == 0
        if sm.error in (2, 1):
            assert sm.contactor == 0
        prev_contactor, prev_duty, prev_relay = sm.contactor, sm.duty_cpct, sm.phase_relay


WEEK_MS = 7 * 24 * 3600 * 1000


def idle_for(r, ms):
    """Let a long time pass: ticks far apart (the machine is stepped every 10 ms on a board; what matters here
    is that the clock wraps past ticks_diff's +-6.2 days between two events)."""
    step = 600000
    for _ in range(ms // step):
        r.now = (r.now + step) & 0x3FFFFFFF
        r.sm.step(r.now, r.cp, r.rcd, r.fb(), r.offer, r.enabled)


def test_a_week_on_the_same_state_keeps_the_contactor_check_and_phase_switching():
    # the ticks clock wraps at 2**30 ms: an event a week ago must not look like one in the future
    r = charging_rig(feedback=True, feedback_grace_ms=300, switch_when_plugged=True, phase_hold_ms=1000,
                     min_switch_interval_ms=60000)
    idle_for(r, WEEK_MS)
    assert r.sm.contactor == 1 and r.error() == "none"
    sm = r.sm
    assert sm.request_phases(1, r.now) == "accepted"
    r.run_until(lambda sm: sm.phases() == 1, limit_ms=20000)  # not held for days by a wrapped interval
    r.run_until(lambda sm: sm.contactor == 1)
    idle_for(r, WEEK_MS)
    r.fb = lambda: 0  # the contactor's feedback drops after a week of charging
    r.run(400)
    assert r.error() != "none" and sm.contactor == 0
