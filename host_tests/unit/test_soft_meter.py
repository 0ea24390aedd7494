"""The simulated energy meter's pure logic on CPython (soft_meter.py): what it counts for which wallbox, that
nothing is lost to rounding, and when it asks the store to save."""
from loadpilot.site import Site
from loadpilot.soft_meter import SoftMeter, parse


class Store:
    def __init__(self, text=""):
        self.values = {"soft_meter_wh": text}
        self.saved = []
        self.listeners = []

    def get(self, key):
        return self.values[key]

    def set_many(self, values):
        self.values.update(values)
        self.saved.append(values["soft_meter_wh"])
        for fn in self.listeners:
            fn("soft_meter_wh")

    def subscribe(self, fn):
        self.listeners.append(fn)


class Cp:
    def __init__(self, dev_id, phases=3):
        self.dev_id = dev_id
        self.phases = phases


def rig(text="", ids=("E1", "E2", "M3")):
    site = Site()
    site.configure(list(ids))
    store = Store(text)
    return site, store, SoftMeter(site, store)


def charging(site, dev_id, current_ma=None, status=3):
    d = site.device(dev_id)
    d.reading.update(current_ma=current_ma, now_ms=0)
    d.status = status
    return d


def test_parse_skips_what_is_not_a_wallbox_count():
    assert parse("E1=123,E2=4567") == {"E1": 123, "E2": 4567}
    assert parse("") == {}
    assert parse("M3=5,E1=-4,E2=x,E=1,E4=99999999999,E5=7") == {"E5": 7}


def test_restored_counts_are_the_boxes_energy_at_once():
    site, store, m = rig("E2=4567")
    assert m.wh("E2") == 4567 and site.device("E2").reading.import_wh == 4567 and m.wh("E1") == 0


def test_measured_currents_times_voltage_and_no_rounding_loss():
    site, store, m = rig()
    d = charging(site, "E2", [5000, 5000, 5000])  # 3 x 5 A x 230 V = 3450 W
    cps = [Cp("E2")]
    t = 0
    m.step(cps, t)
    for _ in range(3600):  # one hour in 1 s steps: 3450 Wh exactly, though each step is 0.958 Wh
        t += 1000
        m.step(cps, t)
    assert m.wh("E2") == 3450 and d.reading.import_wh == 3450
    d.reading.update(voltage_v=[240, 240, 240], current_ma=[10000, 0, 0], now_ms=t)  # the box's own voltage
    for _ in range(360):
        t += 1000
        m.step(cps, t)
    assert m.wh("E2") == 3450 + 240


def test_no_current_reported_counts_the_allocation_on_the_box_phases():
    site, store, m = rig()
    d = charging(site, "E2")
    d.alloc_ma = 16000
    cps = [Cp("E2", phases=1)]
    m.step(cps, 0)
    for i in range(1, 1801):
        m.step(cps, i * 2000)
    assert m.wh("E2") == 16 * 230  # one hour at 16 A x 1 phase x 230 V


def test_only_charging_boxes_without_their_own_energy_count():
    site, store, m = rig()
    cps = [Cp("E1"), Cp("E2")]
    e1 = charging(site, "E1", [16000, 16000, 16000], status=2)  # plugged, not charging
    e2 = charging(site, "E2", [16000, 16000, 16000])
    e2.reading.update(import_wh=700, now_ms=0)  # the box reports its own meter
    m.step(cps, 0)
    m.step(cps, 2000)
    assert m.wh("E1") == 0 and m.wh("E2") == 0 and e2.reading.import_wh == 700
    e1.status = 3
    e1.com_err = True
    m.step(cps, 4000)
    assert m.wh("E1") == 0
    e1.com_err = False
    m.step(cps, 3604000)  # an hour-long gap counts 10 s at most
    assert m.wh("E1") == 11040 * 10 // 3600


def test_saves_every_100_wh_or_15_minutes_and_set_saves_at_once():
    site, store, m = rig()
    d = charging(site, "E2", [16000, 16000, 16000])  # 11040 W: 6.13 Wh per 2 s step, 100 Wh in 32.6 s
    cps = [Cp("E2")]
    t = 0
    m.step(cps, t)
    for _ in range(16):
        t += 2000
        m.step(cps, t)
    assert m.wh("E2") == 98 and store.saved == []
    t += 2000
    m.step(cps, t)
    assert store.saved == ["E2=104"]
    d.reading.update(current_ma=[100, 0, 0], now_ms=t)  # 23 W: 1 Wh in 156 s
    saved_at = t
    while t - saved_at < 900000 - 2000:
        t += 2000
        m.step(cps, t)
    assert len(store.saved) == 1 and m.wh("E2") > 104  # gained, but 15 minutes have not passed
    t += 2000
    m.step(cps, t)
    assert len(store.saved) == 2 and store.saved[-1] == "E2=%d" % m.wh("E2")
    old = m.wh("E2")
    assert m.set("E2", 5) == old
    assert store.saved[-1] == "E2=5" and d.reading.import_wh == 5


def test_a_set_answers_the_old_reading_and_a_removed_box_is_not_saved():
    site, store, m = rig("E1=10,E2=20")
    assert m.set("E2", 30) == 20
    assert store.saved[-1] == "E1=10,E2=30"
    site.configure(["E2"])
    m.set("E2", 31)
    assert store.saved[-1] == "E2=31"
    m.flush()
    assert len(store.saved) == 2  # nothing unsaved


def test_the_setting_written_from_outside_sets_the_counts():
    site, store, m = rig("E1=10,E2=20")
    store.values["soft_meter_wh"] = "E2=7"  # set_params / import_config
    for fn in store.listeners:
        fn("soft_meter_wh")
    assert (m.wh("E1"), m.wh("E2"), site.device("E2").reading.import_wh) == (0, 7, 7)
    m.set("E1", 3)  # its own save does not reload
    assert (m.wh("E1"), m.wh("E2")) == (3, 7)
