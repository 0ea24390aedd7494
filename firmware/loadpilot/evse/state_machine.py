# The charge point's session logic: one step() per CP tick takes what was sensed and leaves the outputs in
# attributes (duty_cpct, contactor, phase_relay) plus state/error for the views. Pure: no I/O, no clock
# reads (now_ms comes in), no logging. step() allocates nothing.
#
# Rules (docs/evse.md has the full table):
# - The contactor closes only in C (or D when ventilation_allowed) while PWM has been on for settle_ms and
#   no fault is present. It opens in the very tick that sees the EV leave C/D.
# - Pause/cut (disable, offer below 6 A, phase switch, wake-up): signal no power first (constant +12 V),
#   wait until the EV leaves C/D or stop_timeout_ms passes, then open.
# - E, F, diode fault, RCD trip, welded contactor: open at once and enter ERROR.
# - Recovery: RCD once the RCD input is released and A (unplugged) is seen; diode fault and "contactor did
#   not close" once A is seen; E/F once the CP reads A or B again; a welded contactor only by reset().
from micropython import const

from loadpilot.evse import pilot
from loadpilot.evse.pilot import A, B, C, D, E, F, DIODE_FAULT, DUTY_HIGH, DUTY_OFF

IDLE = const(0)       # no vehicle (A)
CONNECTED = const(1)  # vehicle present, contactor open (B, or C/D waiting for power)
CHARGING = const(2)   # contactor closed
STOPPING = const(3)   # no power signalled, waiting for the EV to leave C/D before opening
CP_OFF = const(4)     # CP held off (phase switch hold or wake-up), contactor open
ERROR = const(5)
STATE_NAMES = ("idle", "connected", "charging", "stopping", "cp_off", "error")

ERR_NONE = const(0)
ERR_RCD = const(1)
ERR_DIODE = const(2)
ERR_CP_E = const(3)
ERR_CP_F = const(4)
ERR_WELDED = const(5)
ERR_NO_CLOSE = const(6)
ERROR_NAMES = ("none", "rcd_trip", "diode_fault", "cp_short_e", "cp_state_f", "contactor_welded",
               "contactor_did_not_close")

# anti-chatter: two 1p/3p switches at least this far apart, here and on the Power Brain wallboxes this box
# drives (devices/evse_powerbrain.py), whoever asks (manager, Modbus 8087, MQTT ctl phs)
MIN_SWITCH_INTERVAL_MS = const(300000)

ACT_NONE = const(0)
ACT_PHASES = const(1)
ACT_WAKEUP = const(2)


class Config:
    """Timings and options; plain attributes so the caller can set them from its configuration."""

    def __init__(self, **kw):
        self.stop_timeout_ms = 3000         # how long the EV may keep drawing after "no power" is signalled
        self.ventilation_allowed = False    # close in D (charging with ventilation) too
        self.settle_ms = 50                 # a new CP mode must be out this long before its readings count
        self.feedback_grace_ms = 500        # contactor feedback must follow the command within this
        self.relay_dead_ms = 100            # contactor open at least this long before the phase relay moves
        self.phase_hold_ms = 120000         # CP held off during a 1p/3p switch
        self.simulate_unplug = True         # hold CP at -12 V (state F) while switching; else constant +12 V
        self.min_switch_interval_ms = MIN_SWITCH_INTERVAL_MS
        self.switch_when_plugged = False    # by default phases change only while no vehicle is plugged in
        for k in kw:
            if not hasattr(self, k):
                raise ValueError("unknown EVSE setting %r" % k)
            setattr(self, k, kw[k])


def _mode(duty):
    return 0 if duty == DUTY_OFF else (1 if duty == DUTY_HIGH else 2)


def _ticks_diff(a, b):  # ticks_ms wrap at 2**30 on MicroPython; keep this module free of the time module
    d = (a - b) & 0x3FFFFFFF
    return d - 0x40000000 if d & 0x20000000 else d


_STALE_MS = 0x10000000  # ~3.1 days: a stamp older than this is pulled forward to it every step


def _unstale(now_ms, t):
    """t, or now - _STALE_MS when t lies further back: ticks_diff only spans +-6.2 days, so an event a week
    ago would otherwise look like one in the future (a phase switch or the contactor check held for days)."""
    return t if _ticks_diff(now_ms, t) <= _STALE_MS else (now_ms - _STALE_MS) & 0x3FFFFFFF


class ChargeStateMachine:
    def __init__(self, cfg=None, phases=3, now_ms=0):
        self.cfg = cfg or Config()
        self.state = IDLE
        self.error = ERR_NONE
        self.cp = A
        self.duty_cpct = DUTY_HIGH
        self.contactor = 0
        self.phase_relay = 0 if phases == 3 else 1  # relay_select: 0 = 3-phase, 1 = 1-phase
        self.note = "no vehicle"
        self.stop_timeouts = 0   # times the EV kept C after stop_timeout_ms and was cut under load
        self.phase_switches = 0
        self._contactor_ms = now_ms
        self._settle_until = now_ms
        self._stop_ms = now_ms
        self._cpoff_until = now_ms
        self._action = ACT_NONE
        self._wakeup_ms = 0
        self._target_phases = 0  # 0 = no request pending
        self._last_switch_ms = now_ms
        self._switched = False

    # ---- requests from outside (command layer, manager, Modbus registers) ----

    def phases(self):
        return 1 if self.phase_relay else 3

    def request_phases(self, n, now_ms):
        """Ask for 1 or 3 phases. Returns "unchanged", "accepted" (runs now) or "deferred" (waits for the
        minimum interval, or for an unplug unless switch_when_plugged)."""
        if n not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        if n == self.phases():
            self._target_phases = 0
            if self._action == ACT_PHASES and self.state != CP_OFF:
                self._action = ACT_NONE
            return "unchanged"
        self._target_phases = n
        self._start_pending_switch(now_ms)
        if self._target_phases == 0 or self._action == ACT_PHASES:
            return "accepted"
        if self.state == IDLE and self._switch_interval_ok(now_ms):
            return "accepted"  # switches once the contactor has been open relay_dead_ms
        return "deferred"

    def pending_phases(self):
        return self._target_phases

    def request_wakeup(self, ms, now_ms):
        """disconnect_cp: hold CP off for ms (after stopping safely if charging). ms=0 ends a running one.
        False when refused (error, or a phase switch in progress)."""
        if self.state == ERROR or self._action == ACT_PHASES:
            return False
        if ms <= 0:
            if self._action == ACT_WAKEUP:
                if self.state == CP_OFF:
                    self._cpoff_until = now_ms
                else:
                    self._action = ACT_NONE
            return True
        self._action = ACT_WAKEUP
        self._wakeup_ms = ms
        if self.state == CP_OFF:
            self._cpoff_until = now_ms + ms
        return True

    def wakeup_remaining_ms(self, now_ms):
        if self._action != ACT_WAKEUP:
            return 0
        if self.state != CP_OFF:
            return self._wakeup_ms
        left = _ticks_diff(self._cpoff_until, now_ms)
        return left if left > 0 else 0

    def reset(self, now_ms):
        """Clear any error, including a welded contactor (the installer has checked it)."""
        if self.state == ERROR:
            self.error = ERR_NONE
            self.state = IDLE
            self.note = "reset"
            self._contactor_ms = now_ms

    # ---- internals ----

    def _set_duty(self, d, now_ms):
        if _mode(d) != _mode(self.duty_cpct):
            self._settle_until = now_ms + self.cfg.settle_ms
        self.duty_cpct = d

    def _set_contactor(self, v, now_ms):
        if v != self.contactor:
            self.contactor = v
            self._contactor_ms = now_ms

    def _fault(self, code, now_ms):
        if self.error == ERR_WELDED:
            return  # stays latched until reset(); nothing overrides it
        self._set_contactor(0, now_ms)
        self._set_duty(DUTY_HIGH, now_ms)  # +12 V constant, so the CP still shows when the EV is unplugged
        if self.state == CP_OFF and self._action == ACT_PHASES:
            self._action = ACT_NONE  # the switch is retried later (target stays pending)
        elif self._action == ACT_WAKEUP:
            self._action = ACT_NONE
        self.state = ERROR
        self.error = code
        self.note = ERROR_NAMES[code]

    def _charging_cp(self, cp):
        return cp == C or (cp == D and self.cfg.ventilation_allowed)

    def _switch_interval_ok(self, now_ms):
        return self.phase_switches == 0 or \
            _ticks_diff(now_ms, self._last_switch_ms) >= self.cfg.min_switch_interval_ms

    def _switch_relay(self, now_ms):
        if self._target_phases == 0:
            return  # the request was withdrawn during the hold
        self.phase_relay = 1 if self._target_phases == 1 else 0
        self._target_phases = 0
        self._last_switch_ms = now_ms
        self.phase_switches += 1

    def _start_pending_switch(self, now_ms):
        if self._target_phases == 0 or self._action != ACT_NONE or self.state in (ERROR, CP_OFF, STOPPING):
            return
        if not self._switch_interval_ok(now_ms):
            return
        if self.state == IDLE and self.contactor == 0:
            if _ticks_diff(now_ms, self._contactor_ms) >= self.cfg.relay_dead_ms:
                self._switch_relay(now_ms)  # nobody plugged in: no sequence needed
        elif self.cfg.switch_when_plugged:
            self._action = ACT_PHASES

    def _enter_cp_off(self, now_ms):
        self._set_contactor(0, now_ms)
        self.state = CP_OFF
        if self._action == ACT_WAKEUP:
            self._cpoff_until = now_ms + self._wakeup_ms
            self._set_duty(DUTY_OFF, now_ms)
            self.note = "wake-up: CP off"
        else:
            self._cpoff_until = now_ms + self.cfg.phase_hold_ms
            self._set_duty(DUTY_OFF if self.cfg.simulate_unplug else DUTY_HIGH, now_ms)
            self.note = "phase switch: CP hold"

    def _after_open(self, cp, now_ms):
        if self._action != ACT_NONE:
            self._enter_cp_off(now_ms)
        else:
            self.state = IDLE if cp == A else CONNECTED
            self._set_duty(DUTY_HIGH, now_ms)

    def _error_tick(self, cp, rcd):
        e = self.error
        if e == ERR_WELDED:
            return
        if e == ERR_RCD:
            clear = not rcd and cp == A
        elif e == ERR_CP_E or e == ERR_CP_F:
            clear = cp == A or cp == B
        else:  # diode fault, contactor did not close
            clear = cp == A
        if clear:
            self.error = ERR_NONE
            self.state = IDLE if cp == A else CONNECTED
            self.note = "recovered"

    # ---- the tick ----

    def step(self, now_ms, cp, rcd_tripped, feedback, offer_ma, enabled):
        """cp: pilot.A..F or DIODE_FAULT; feedback: None without a feedback input, else 0/1 (1 = closed)."""
        self.cp = cp
        self._contactor_ms = _unstale(now_ms, self._contactor_ms)
        self._last_switch_ms = _unstale(now_ms, self._last_switch_ms)
        self._settle_until = _unstale(now_ms, self._settle_until)
        self._stop_ms = _unstale(now_ms, self._stop_ms)
        self._cpoff_until = _unstale(now_ms, self._cpoff_until)
        if rcd_tripped:
            self._fault(ERR_RCD, now_ms)
        if feedback is not None and _ticks_diff(now_ms, self._contactor_ms) >= self.cfg.feedback_grace_ms:
            if self.contactor == 0 and feedback:
                self._fault(ERR_WELDED, now_ms)
            elif self.contactor == 1 and not feedback:
                self._fault(ERR_NO_CLOSE, now_ms)
        settled = _ticks_diff(now_ms, self._settle_until) >= 0
        state = self.state
        if state != ERROR and state != CP_OFF and settled:
            if cp == E:
                self._fault(ERR_CP_E, now_ms)
            elif cp == F:
                self._fault(ERR_CP_F, now_ms)
            elif cp == DIODE_FAULT:
                self._fault(ERR_DIODE, now_ms)
        if self.state == ERROR:
            self._error_tick(cp, rcd_tripped)
            if self.state == ERROR:
                return
        state = self.state

        if state == CP_OFF:
            if _ticks_diff(now_ms, self._cpoff_until) < 0:
                return
            if self._action == ACT_PHASES:
                self._switch_relay(now_ms)
            self._action = ACT_NONE
            self.state = CONNECTED  # readings taken while CP was off are stale; the next ticks re-evaluate
            self._set_duty(DUTY_HIGH, now_ms)
            self.note = "CP back on"
            return

        self._start_pending_switch(now_ms)
        want = enabled and offer_ma >= pilot.MIN_CURRENT_MA and self._action == ACT_NONE
        duty = pilot.duty_cpct_for_current(offer_ma) if want else DUTY_HIGH

        if state == STOPPING:
            if not self._charging_cp(cp):
                self._set_contactor(0, now_ms)
                self.note = "EV stopped"
                self._after_open(cp, now_ms)
            elif want:
                self.state = CHARGING
                self._set_duty(duty, now_ms)
                self.note = "resumed"
            elif _ticks_diff(now_ms, self._stop_ms) >= self.cfg.stop_timeout_ms:
                self._set_contactor(0, now_ms)
                self.stop_timeouts += 1
                self.note = "EV kept drawing: opened after timeout"
                self._after_open(cp, now_ms)
            return

        if state == CHARGING:
            if not self._charging_cp(cp):
                self._set_contactor(0, now_ms)  # the EV left C/D: open in this very tick
                self.note = "EV left C"
                state = IDLE if cp == A else CONNECTED
                self.state = state
            elif not want:
                self.state = STOPPING
                self._stop_ms = now_ms
                self._set_duty(DUTY_HIGH, now_ms)
                self.note = "stopping: no power signalled"
                return
            else:
                self._set_duty(duty, now_ms)
                return

        # IDLE or CONNECTED: contactor open
        if cp == A:
            self.state = IDLE
            self._set_duty(DUTY_HIGH, now_ms)
            if self._action == ACT_WAKEUP:
                self._enter_cp_off(now_ms)
            else:
                self.note = "no vehicle"
            return
        if cp != B and cp != C and cp != D:
            return  # E/F/diode read while the CP mode is still settling: hold, contactor stays open
        self.state = CONNECTED
        if self._action != ACT_NONE:
            self._enter_cp_off(now_ms)
            return
        was_pwm = _mode(self.duty_cpct) == 2
        self._set_duty(duty, now_ms)
        if cp == B:
            self.note = "vehicle connected" if want else ("charging disabled" if not enabled else "no current")
        elif not self._charging_cp(cp):
            self.note = "ventilation required"
        elif want and was_pwm and _ticks_diff(now_ms, self._settle_until) >= 0:
            self._set_contactor(1, now_ms)
            self.state = CHARGING
            self.note = "charging"
        else:
            self.note = "waiting for power"
