# S0 pulse meter: counts pulses in an edge handler, derives energy (Wh) and power (W), and persists the
# energy counter through a callback without wearing the flash.
#
# The edge handler (an IRQ on ESP32) allocates nothing: it compares ticks, bumps an int and stores the tick.
# Edges closer than min_spacing_ms to the last counted pulse are contact bounce and are ignored.
#
# Power comes from the time between the last two pulses. When no pulse arrives, the power decays as if the
# next pulse were due right now (energy per pulse / time since the last pulse) and drops to 0 after
# zero_after_ms.
#
# Persistence (flash wear): poll() calls persist(energy_wh, pulses) only when at least persist_every_wh Wh
# have accrued since the last save, or persist_every_ms passed and the counter changed. A power cut loses
# what accrued since the last save: less than persist_every_wh Wh plus what arrives within one poll period
# (poll runs every second: at 22 kW that is 7 Wh), and never more than persist_every_ms worth of charging.
# With the defaults (100 Wh, 15 min) that is at most ~107 Wh, for at most one flash write per 100 Wh plus
# four an hour while energy flows.
import time
from micropython import const

_MS_PER_H = const(3600000)


class S0Meter:
    def __init__(self, pulses_per_kwh=1000, energy_wh=0, pulses=0, persist=None, min_spacing_ms=20,
                 persist_every_wh=100, persist_every_ms=900000, zero_after_ms=300000, now_ms=None):
        if pulses_per_kwh <= 0:
            raise ValueError("pulses_per_kwh must be positive")
        self.pulses_per_kwh = pulses_per_kwh
        self.min_spacing_ms = min_spacing_ms
        self.persist_every_wh = persist_every_wh
        self.persist_every_ms = persist_every_ms
        self.zero_after_ms = zero_after_ms
        self._persist = persist
        self.pulses = pulses           # absolute pulse count (register 8050)
        self._base_wh = energy_wh      # energy at _base_pulses; rebased when pulses_per_kwh changes
        self._base_pulses = pulses
        self._last_ms = 0              # tick of the last counted pulse
        self._interval_ms = 0          # time between the last two counted pulses; 0 = fewer than two yet
        self._have_pulse = False
        self.bounces = 0
        self.energy_wh = energy_wh
        self.power_w = 0
        self.persisted_wh = energy_wh
        self.persist_count = 0
        now = time.ticks_ms() if now_ms is None else now_ms
        self._persist_ms = now

    def pulse(self, now_ms):
        """One pulse edge at now_ms. Allocation-free: safe in an IRQ handler."""
        if self._have_pulse:
            dt = time.ticks_diff(now_ms, self._last_ms)
            if dt < self.min_spacing_ms:
                self.bounces += 1
                return
            self._interval_ms = dt
        self._have_pulse = True
        self._last_ms = now_ms
        self.pulses += 1

    def irq(self, pin=None):
        """Edge handler for hal.input(): the caller filters the active edge (see EvseTask)."""
        self.pulse(time.ticks_ms())

    def set_pulses_per_kwh(self, ppk):
        if ppk <= 0:
            raise ValueError("pulses_per_kwh must be positive")
        self._base_wh = self.energy_wh
        self._base_pulses = self.pulses
        self.pulses_per_kwh = ppk

    def set_energy(self, wh, now_ms):
        """reset_energy / a written energy register: start counting from wh, and save it."""
        self._base_wh = wh
        self._base_pulses = self.pulses
        self.energy_wh = wh
        self._save(now_ms)

    def set_pulses(self, pulses, now_ms):
        """pulses / reset_pulses registers: the absolute pulse count changes, the energy does not."""
        self.pulses = pulses
        self._base_pulses = pulses
        self._base_wh = self.energy_wh
        self._save(now_ms)

    def _power_from(self, dt_ms):
        # energy per pulse 1000/ppk Wh, over dt: W = 1000 Wh/kWh * 3600000 ms/h / (ppk * dt_ms)
        return 1000 * _MS_PER_H // (self.pulses_per_kwh * dt_ms)

    def poll(self, now_ms):
        """Update energy_wh and power_w; save when due. Call about once a second, not from an IRQ."""
        pulses = self.pulses  # one read: the IRQ may bump it meanwhile, the next poll sees the rest
        self.energy_wh = self._base_wh + (pulses - self._base_pulses) * 1000 // self.pulses_per_kwh
        if not self._have_pulse or self._interval_ms <= 0:
            self.power_w = 0
        else:
            since = time.ticks_diff(now_ms, self._last_ms)
            if since >= self.zero_after_ms:
                self.power_w = 0
            else:
                self.power_w = self._power_from(since if since > self._interval_ms else self._interval_ms)
        gained = self.energy_wh - self.persisted_wh
        if gained >= self.persist_every_wh or \
                (gained != 0 and time.ticks_diff(now_ms, self._persist_ms) >= self.persist_every_ms):
            self._save(now_ms)

    def flush(self, now_ms):
        """Save now if anything is unsaved (orderly shutdown)."""
        if self.energy_wh != self.persisted_wh:
            self._save(now_ms)

    def _save(self, now_ms):
        self._persist_ms = now_ms
        self.persisted_wh = self.energy_wh
        if self._persist is not None:
            self.persist_count += 1
            self._persist(self.energy_wh, self.pulses)

    def time_per_pulse_ms(self):
        return self._interval_ms

    def view(self):
        return {"energy_wh": self.energy_wh, "power_w": self.power_w, "pulses": self.pulses,
                "pulses_per_kwh": self.pulses_per_kwh, "time_per_pulse_ms": self._interval_ms,
                "persisted_wh": self.persisted_wh}
