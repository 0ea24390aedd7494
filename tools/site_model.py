"""A virtual site for `make sim` and the tests: house load, a PV curve, a battery, and EVs arriving at and
leaving wallboxes. Pure Python on the host; it produces meter readings in the firmware's units (mA, V, W, Wh).

The model is deterministic for a given seed, so a test can assert on it.
"""
import math
import random

VOLTAGE_V = 230


class Ev:
    def __init__(self, name, arrive_s, leave_s, need_wh, max_ma, phases):
        self.name = name
        self.arrive_s = arrive_s
        self.leave_s = leave_s
        self.need_wh = need_wh
        self.max_ma = max_ma
        self.phases = phases
        self.charged_wh = 0.0

    def present(self, t_s):
        return self.arrive_s <= t_s < self.leave_s

    def draw_ma(self, offered_ma):
        """What the car takes when offered this much: nothing when full, never more than it can."""
        if self.charged_wh >= self.need_wh or offered_ma < 6000:
            return 0
        return min(offered_ma, self.max_ma)


class SiteModel:
    def __init__(self, wallboxes=("E1", "E2", "E3"), pv_peak_w=8000, house_base_w=350, seed=1):
        self.rng = random.Random(seed)
        self.wallboxes = list(wallboxes)
        self.pv_peak_w = pv_peak_w
        self.house_base_w = house_base_w
        self.evs = {}
        self.grid_import_wh = 0.0
        self.grid_export_wh = 0.0
        self.pv_wh = 0.0
        self.ev_ma = {w: [0, 0, 0] for w in self.wallboxes}
        self.ev_wh = {w: 0.0 for w in self.wallboxes}
        self._bursts = []
        for i, w in enumerate(self.wallboxes):
            # one EV per wallbox per day: commuters in the evening, one home-office car at noon
            arrive = (17 + i) * 3600 + self.rng.randrange(0, 3600) if i % 3 != 2 else 10 * 3600
            self.evs[w] = Ev("car%d" % (i + 1), arrive, arrive + 6 * 3600, 20000 + 5000 * i,
                             16000 if i % 2 == 0 else 32000, 3 if i % 2 == 0 else 1)

    def pv_w(self, t_s):
        hour = (t_s / 3600.0) % 24
        if not 6 <= hour <= 20:
            return 0
        return int(self.pv_peak_w * math.sin(math.pi * (hour - 6) / 14) ** 2)

    def house_phase_w(self, t_s):
        hour = (t_s / 3600.0) % 24
        base = self.house_base_w + (600 if 18 <= hour <= 22 else 0) + (300 if 7 <= hour <= 8 else 0)
        w = [base // 3, base // 3, base - 2 * (base // 3)]
        if self.rng.random() < 0.01:  # a kettle or an oven switches on for a few minutes
            self._bursts.append([t_s + self.rng.randrange(60, 900), self.rng.randrange(3), 2000])
        for b in self._bursts:
            if b[0] > t_s:
                w[b[1]] += b[2]
        self._bursts = [b for b in self._bursts if b[0] > t_s]
        return w

    def step(self, t_s, dt_s, offers_ma):
        """Advance dt_s seconds at time-of-day t_s. offers_ma: wallbox -> offered current in mA.
        Returns the readings: {'M1': grid, 'M2': pv, 'E1': ..., ...}."""
        house = self.house_phase_w(t_s)
        pv = self.pv_w(t_s)
        pv_phase = [pv // 3] * 3
        ev_phase_w = [0, 0, 0]
        for w in self.wallboxes:
            ev = self.evs[w]
            cur = [0, 0, 0]
            if ev.present(t_s):
                ma = ev.draw_ma(offers_ma.get(w, 0))
                for p in range(ev.phases):
                    cur[p] = ma
            self.ev_ma[w] = cur
            wh = sum(cur) * VOLTAGE_V / 1000.0 * dt_s / 3600.0
            ev.charged_wh += wh
            self.ev_wh[w] += wh
            for p in range(3):
                ev_phase_w[p] += cur[p] * VOLTAGE_V // 1000
        grid_w = [house[p] + ev_phase_w[p] - pv_phase[p] for p in range(3)]
        total = sum(grid_w)
        if total > 0:
            self.grid_import_wh += total * dt_s / 3600.0
        else:
            self.grid_export_wh += -total * dt_s / 3600.0
        self.pv_wh += pv * dt_s / 3600.0
        out = {
            "M1": _meter([g * 1000 // VOLTAGE_V for g in grid_w], total, self.grid_import_wh, self.grid_export_wh),
            "M2": _meter([-(x * 1000 // VOLTAGE_V) for x in pv_phase], -pv, 0, self.pv_wh),
        }
        for w in self.wallboxes:
            cur = self.ev_ma[w]
            out[w] = _meter(cur, sum(cur) * VOLTAGE_V // 1000, self.ev_wh[w], 0)
            ev = self.evs[w]
            out[w]["status"] = 3 if any(cur) else (2 if ev.present(t_s) else 1)
        return out


def _meter(current_ma, power_w, import_wh, export_wh):
    return {"current_ma": [int(c) for c in current_ma], "voltage_v": [VOLTAGE_V] * 3, "power_w": int(power_w),
            "import_wh": int(import_wh), "export_wh": int(export_wh)}
