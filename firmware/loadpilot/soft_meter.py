# The simulated energy meter (reference/http-api.md soft_meter): a Wh counter per wallbox that reports no energy
# of its own (the local box without S0 pulses, a pushed box that sends no total_energy, a Power Brain box without
# a meter). The manager cycle calls step() once per cycle; for each such box in state C/D it adds the charging
# power over the time since the last step: the measured phase currents x their voltage (nominal 230 V unless the
# box reports one), else the allocated current x phases x 230 V. The remainder below 1 Wh is kept in mJ
# (W x ms), so nothing is lost to rounding. The count is written into the box's reading as import_wh, so the
# sessions, get_dev_info, SunSpec and OMCCI see it as the box's meter.
#
# Persistence (flash wear), as the S0 counters (evse/s0.py): the counts go to the setting soft_meter_wh
# ("E1=123,E2=4567") when a box has gained 100 Wh since the last save, or 15 minutes have passed with a gain,
# and at a planned stop; the store coalesces saves within its commit delay (150 s). A power cut loses < 100 Wh
# per box.
import time

from micropython import const

from loadpilot.codes import ST_CHARGING, ST_VENTILATION

KEY = "soft_meter_wh"
MAX_WH = 10 ** 9  # 1 GWh: a small int on the 32-bit port, far above any wallbox's lifetime
_MJ_PER_WH = const(3600000)
_NOMINAL_V = const(230)
_MAX_DT_MS = const(10000)  # a stalled loop or a clock step adds at most 10 s of charging, not an invented hour
_SAVE_WH = const(100)
_SAVE_MS = const(900000)


def parse(text):
    """'E1=123,E2=45' -> {dev_id: wh}; a malformed entry is skipped (the setting is user-writable)."""
    out = {}
    for part in text.split(","):
        k, eq, v = part.partition("=")
        if eq and len(k) >= 2 and k[0] == "E" and k[1:].isdigit() and v.isdigit() and int(v) <= MAX_WH:
            out[k] = int(v)
    return out


def charging_power_w(dev, phases):
    """The estimate of what dev draws now, W: measured currents x voltage, else allocation x phases x 230 V."""
    r = dev.reading
    c = r.current_ma
    w = 0
    for i in range(3):
        if c[i] > 0:
            w += r.phase_power_w(i)
    if w > 0:
        return w
    return dev.alloc_ma * phases * _NOMINAL_V // 1000


class SoftMeter:
    def __init__(self, site, store):
        self.site = site
        self.store = store
        self._m = {}  # dev_id -> [wh, remainder mJ, wh at the last save]
        self._written = None  # the text this meter saved last
        self._load(store.get(KEY))
        self._last_ms = None
        self._saved_ms = time.ticks_ms()
        self.saves = 0
        store.subscribe(self._changed)

    def _load(self, text):
        counts = parse(text)
        for dev_id, m in self._m.items():  # a box the text leaves out stands at 0
            if dev_id not in counts:
                m[0] = m[1] = m[2] = 0
        for dev_id, wh in counts.items():
            m = self._entry(dev_id)
            m[0] = m[2] = wh
            m[1] = 0
        for dev_id, m in self._m.items():
            d = self.site.device(dev_id)
            if d is not None and not d.reading.own_energy:  # in place before a session can start
                d.reading.import_wh = m[0]

    def _changed(self, key):
        # set_params or import_config wrote the setting: the counts follow it (not the meter's own saves)
        if key == KEY:
            text = self.store.get(KEY)
            if text != self._written:
                self._load(text)

    def _entry(self, dev_id):
        m = self._m.get(dev_id)
        if m is None:
            m = self._m[dev_id] = [0, 0, 0]
        return m

    def wh(self, dev_id):
        m = self._m.get(dev_id)
        return m[0] if m is not None else 0

    def step(self, chargepoints, now):
        """Integrate over the time since the last step; chargepoints have .dev_id and .phases (manager model)."""
        dt = 0 if self._last_ms is None else time.ticks_diff(now, self._last_ms)
        self._last_ms = now
        if dt > _MAX_DT_MS:
            dt = _MAX_DT_MS
        due = False
        for i in range(len(chargepoints)):
            cp = chargepoints[i]
            d = self.site.device(cp.dev_id)
            if d is None or d.reading.own_energy:
                continue
            m = self._entry(cp.dev_id)
            st = d.status
            if dt > 0 and not d.com_err and d.reading.updated_ms is not None and \
                    (st == ST_CHARGING or st == ST_VENTILATION):
                w = charging_power_w(d, cp.phases)
                if w > 0:
                    mj = m[1] + w * dt
                    if mj >= _MJ_PER_WH:
                        m[0] += mj // _MJ_PER_WH
                        mj %= _MJ_PER_WH
                    m[1] = mj
            d.reading.import_wh = m[0]
            gained = m[0] - m[2]
            if gained >= _SAVE_WH or (gained != 0 and time.ticks_diff(now, self._saved_ms) >= _SAVE_MS):
                due = True
        if due:
            self.save(now)

    def set(self, dev_id, wh):
        """soft_meter val=: -> the reading before; saved at once (within the store's commit delay)."""
        m = self._entry(dev_id)
        old = m[0]
        m[0] = wh
        m[1] = 0
        d = self.site.device(dev_id)
        if d is not None and not d.reading.own_energy:
            d.reading.import_wh = wh
        self.save(time.ticks_ms())
        return old

    def forget(self, devs):
        """The boxes no longer in devs (the Site's devices) lose their counts, in RAM and in the setting, so
        a box added later under the same dev_id starts at 0 Wh."""
        gone = [k for k in self._m if k not in devs]
        saved = False
        for k in gone:
            saved = saved or self._m[k][0] != 0
            del self._m[k]
        if saved:
            self.save(time.ticks_ms())

    def flush(self):
        """Save if anything is unsaved (a planned stop)."""
        for m in self._m.values():
            if m[0] != m[2]:
                self.save(time.ticks_ms())
                return

    def save(self, now):
        self._saved_ms = now
        parts = []
        devs = self.site.devices
        for dev_id, m in self._m.items():
            m[2] = m[0]
            if m[0] and dev_id in devs:  # a removed box's count goes: the setting stays within 25 boxes
                parts.append("%s=%d" % (dev_id, m[0]))
        self.saves += 1
        self._written = ",".join(parts)
        self.store.set_many({KEY: self._written})
