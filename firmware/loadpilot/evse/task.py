# The local charge point task: samples CP (every period_ms) and PP, feeds the state machine, drives the
# CP PWM, contactor and phase relay, and runs the S0 meters. Wiring only; the decisions are in
# state_machine.py, pilot.py and effective.py.
#
# CP voltage convention: adc("cp").read_mv() is the CP *line* voltage in mV (signed). On ESP32 boards the
# board file's scale_num/scale_den/offset_mv map the ADC pin to the line (read_mv() applies them). The HAL's
# sample_cp() gives the high and low half of the PWM (a burst over one period on a real board; what the virtual
# EV set on the unix board).
#
# Safety: the RCD input's handler opens the contactor itself (in the IRQ on ESP32), it does not wait for the
# next tick. Leaving C is seen by the next CP tick (period_ms, default 10 ms) and opened in that tick.
import asyncio
import time
from micropython import const

from loadpilot.evse import pilot
from loadpilot.evse.effective import Limits
from loadpilot.evse.s0 import S0Meter
from loadpilot.evse.state_machine import ChargeStateMachine, Config, STATE_NAMES, ERROR_NAMES, ERR_RCD, \
    ERR_CP_E, ERR_CP_F, ERR_DIODE

PERIOD_MS = const(10)
PP_PERIOD_MS = const(100)
S0_PERIOD_MS = const(1000)

DEFAULTS = (  # (key, value) pairs: a constant table, not a dict built at import
    ("hardware_max_ma", 32000),
    ("phases", 3),               # initial relay_select
    ("enabled", True),           # def_charging_enable
    ("pp_pullup_ohms", 1000),    # PP pull-up on the board...
    ("pp_vref_mv", 3300),        # ...to this reference
    ("pulses_per_kwh", 1000),
    ("s0_min_spacing_ms", 20),
    ("s0_persist_every_wh", 100),
    ("s0_persist_every_ms", 900000),
)


class EvseTask:
    def __init__(self, hal, board, settings=None, log=None, persist_s0=None, s0_energy=None):
        """settings: DEFAULTS keys plus Config (state machine) keys. persist_s0(index, energy_wh, pulses)
        saves an S0 counter; s0_energy[index] = (energy_wh, pulses) restores it."""
        s = dict(DEFAULTS)
        sm_kw = {}
        for k, v in (settings or {}).items():
            if k in s:  # one of DEFAULTS
                s[k] = v
            else:
                sm_kw[k] = v
        self.settings = s
        self.log = log
        self.hal = hal
        feats = board.get("features", {})
        now = time.ticks_ms()
        self.sm = ChargeStateMachine(Config(**sm_kw), s["phases"], now)
        self.limits = Limits(s["hardware_max_ma"])
        self.enabled = bool(s["enabled"])
        self.phase_switching = bool(feats.get("phase_switching"))

        self._contactor = hal.output("contactor")
        self._contactor.value(0)
        self._applied_contactor = 0
        self._relay = hal.output("phase_relay") if "phase_relay" in board.get("outputs", {}) else None
        if self._relay is not None:
            self._relay.value(self.sm.phase_relay)
        self._pwm = hal.pwm("cp")
        self._pwm.duty_cpct(self.sm.duty_cpct)
        self._applied_duty = self.sm.duty_cpct
        self._cp_adc = hal.adc("cp")
        self._cp_sample = [0, 0]  # high and low half of the last CP sample (reused: the tick allocates nothing)
        adcs = board.get("adc", {})
        self._cp_low_adc = hal.adc("cp_low") if "cp_low" in adcs else None
        self._pp_adc = hal.adc("pp") if "pp" in adcs else None
        self._feedback = hal.input("contactor_feedback") if feats.get("contactor_feedback") else None

        self._rcd_latched = False
        self._rcd = None
        if feats.get("rcd") and "rcd_trip" in board.get("inputs", {}):
            self._rcd = hal.input("rcd_trip", self._rcd_irq)

        self.s0 = []
        self._s0_in = []
        inputs = board.get("inputs", {})
        if feats.get("s0"):
            for i, name in enumerate(("s0_1", "s0_2")):
                if name not in inputs:
                    continue
                e_wh, pulses = (s0_energy or {}).get(i, (0, 0))
                cb = None
                if persist_s0 is not None:
                    cb = (lambda idx: lambda wh, p: persist_s0(idx, wh, p))(i)
                m = S0Meter(s["pulses_per_kwh"], e_wh, pulses, cb, s["s0_min_spacing_ms"],
                            s["s0_persist_every_wh"], s["s0_persist_every_ms"], now_ms=now)
                self.s0.append(m)
                self._s0_in.append(None)
                self._s0_in[-1] = hal.input(name, self._s0_handler(len(self.s0) - 1))

        self.cp_state = pilot.A
        self.cp_mv = 0
        self.cp_low_mv = 0
        self.ticks = 0
        self._pp_ms = now
        self._s0_ms = now
        self._last_state = self.sm.state
        self._last_error = self.sm.error

    # ---- edge handlers (IRQ context on ESP32: short, allocation-free) ----

    def _rcd_irq(self, pin):
        if self._rcd is None or self._rcd.value():
            self._contactor.value(0)
            self._applied_contactor = 0
            self._rcd_latched = True

    def _s0_handler(self, idx):
        def handler(pin):
            inp = self._s0_in[idx]
            if inp is None or inp.value():  # count the active edge only
                self.s0[idx].pulse(time.ticks_ms())
        return handler

    # ---- sampling ----

    def _sample_cp(self):
        pwm_on = 0 < self._applied_duty < pilot.DUTY_HIGH
        out = self._cp_sample
        self.hal.sample_cp(self._cp_adc, self._cp_low_adc, pwm_on, out)
        self.cp_mv = out[0]
        self.cp_low_mv = out[1]
        self.cp_state = pilot.classify_cp(out[0], out[1] if pwm_on else None, self.cp_state)
        return self.cp_state

    def _sample_pp(self):
        if self._pp_adc is None:
            self.limits.cable_ma = None
            return
        s = self.settings
        ohms = pilot.pp_ohms_from_mv(self._pp_adc.read_mv(), s["pp_pullup_ohms"], s["pp_vref_mv"])
        cap = pilot.pp_capacity_ma(ohms)
        self.limits.cable_ma = cap if cap > 0 else 0

    # ---- the tick ----

    def tick(self, now):
        cp = self._sample_cp()
        if time.ticks_diff(now, self._pp_ms) >= PP_PERIOD_MS:
            self._pp_ms = now
            self._sample_pp()
        rcd = self._rcd_latched or (self._rcd is not None and self._rcd.value() == 1)
        self._rcd_latched = False
        fb = self._feedback.value() if self._feedback is not None else None
        offer = self.limits.compute()
        sm = self.sm
        sm.step(now, cp, rcd, fb, offer, self.enabled)
        self._apply()
        self.ticks += 1
        # also at a state change: an unplug's reading (a session's meter at its end) has every pulse counted so far
        if time.ticks_diff(now, self._s0_ms) >= S0_PERIOD_MS or sm.state != self._last_state:
            self._s0_ms = now
            for m in self.s0:
                m.poll(now)
        if sm.state != self._last_state or sm.error != self._last_error:
            self._log_change()

    def _apply(self):
        sm = self.sm
        c = sm.contactor
        if c == 0 and self._applied_contactor:
            self._contactor.value(0)  # open first, before anything else changes
            self._applied_contactor = 0
        if self._relay is not None and sm.phase_relay != self._relay.value():
            self._relay.value(sm.phase_relay)  # the state machine changes it only while the contactor is open
        if sm.duty_cpct != self._applied_duty:
            self._pwm.duty_cpct(sm.duty_cpct)
            self._applied_duty = sm.duty_cpct
        if c and not self._applied_contactor and not self._rcd_latched:
            self._contactor.value(1)
            self._applied_contactor = 1

    def _log_change(self):
        sm = self.sm
        if self.log is not None:
            msg = "%s -> %s (%s)" % (STATE_NAMES[self._last_state], STATE_NAMES[sm.state], sm.note)
            if sm.error:
                self.log.error("evse", msg)
            else:
                self.log.info("evse", msg)
        self._last_state = sm.state
        self._last_error = sm.error

    async def run(self):
        try:
            while True:
                self.tick(time.ticks_ms())
                await asyncio.sleep_ms(PERIOD_MS)
        finally:
            self._contactor.value(0)  # a crashed or cancelled task leaves the contactor open
            self._applied_contactor = 0
            for m in self.s0:
                m.flush(time.ticks_ms())

    # ---- commands (the command layer and Modbus registers call these) ----

    def set_enabled(self, on):
        self.enabled = bool(on)

    def request_phases(self, n):
        if not self.phase_switching or self._relay is None:
            return "unsupported"
        return self.sm.request_phases(n, time.ticks_ms())

    def disconnect_cp(self, seconds):
        return self.sm.request_wakeup(int(seconds) * 1000, time.ticks_ms())

    def reset(self):
        self.sm.reset(time.ticks_ms())

    def s0_level(self, index):
        """Level of S0 input index: 1 while the contact conducts (current flows)."""
        inp = self._s0_in[index]
        return 1 if inp is not None and inp.value() else 0

    def cp_register(self):
        """Register 8092: 0..5 = A..F, 9 = DC residual-current error."""
        e = self.sm.error
        if e == ERR_RCD:
            return 9
        if e == ERR_CP_E or e == ERR_DIODE:
            return pilot.E
        if e == ERR_CP_F:
            return pilot.F
        return self.cp_state if self.cp_state <= pilot.F else pilot.E

    def view(self):
        sm = self.sm
        now = time.ticks_ms()
        return {
            "state": STATE_NAMES[sm.state], "cp": pilot.STATE_NAMES[self.cp_state], "cp_mv": self.cp_mv,
            "cp_register": self.cp_register(), "error": ERROR_NAMES[sm.error], "note": sm.note,
            "duty_cpct": sm.duty_cpct, "offered_ma": pilot.current_ma_for_duty(sm.duty_cpct),
            "contactor": sm.contactor, "phases": sm.phases(), "pending_phases": sm.pending_phases(),
            "enabled": self.enabled, "limit": self.limits.view(), "stop_timeouts": sm.stop_timeouts,
            "phase_switches": sm.phase_switches, "disconnect_cp_s": (sm.wakeup_remaining_ms(now) + 999) // 1000,
            "ticks": self.ticks, "s0": [m.view() for m in self.s0],
        }

    def ctl_handlers(self):
        """Control-socket ops for tests and `make sim` (the unix board only serves them)."""
        return {"evse": lambda req: self.view(), "evse_cmd": self._ctl_cmd}

    def _ctl_cmd(self, req):
        res = {}
        # enable and the modbus/manager/fixed limits have one writer, the local charge point's driver
        # (devices/evse_local.py): the app routes "enable" through the command layer
        if "ocpp_ma" in req:
            self.limits.ocpp_ma = None if req["ocpp_ma"] is None else int(req["ocpp_ma"])
        if "phases" in req:
            res["phases"] = self.request_phases(int(req["phases"]))
        if "disconnect_cp_s" in req:
            res["disconnect_cp"] = self.disconnect_cp(req["disconnect_cp_s"])
        if req.get("reset"):
            self.reset()
        res["view"] = self.view()
        return res
