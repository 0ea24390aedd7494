"""ManagerCycle on CPython: what a remote wallbox reports about its phases reaches the manager, and an MQTT
ctl phase wish in observation mode becomes a set-point of its own."""
from loadpilot.config import schema
from loadpilot.manager_cycle import ManagerCycle
from loadpilot.site import Site


class Store:
    def __init__(self, **values):
        self.values = schema.defaults()
        self.values.update(values)
        self.volatile = dict(max_total_cur_prc=100)

    def get(self, key):
        return self.values[key]

    def subscribe(self, fn):
        pass


class Log:
    def info(self, *a):
        pass

    warn = error = info


DEVICES = [{"dev_id": "E2", "driver": "evse_powerbrain", "address": "COM1,19200,8,n,1", "id": 1,
            "min_charging_cur": 6000, "max_charging_cur": 16000, "prio": 1, "phases": 3}]


def cycle_for(**cfg):
    site = Site()
    site.configure(["E2"])
    store = Store(devices=DEVICES, **cfg)
    mc = ManagerCycle(store, site, Log())
    d = site.device("E2")
    d.status = 3
    d.reading.update(current_ma=[6000, 0, 0], now_ms=1000)
    return mc, store, d


def test_a_remote_box_reports_its_phases_and_ability_to_the_manager():
    mc, store, d = cycle_for()
    d.phases = 1
    d.can_switch_phases = True
    mc.cycle(1000)
    cp = mc.msite.chargepoints[0]
    assert cp.phases == 1 and cp.can_switch_phases is True
    assert mc.setpoints["E2"][2] == 1  # no wish to switch: the set-point keeps the box's own phases
    d.phases = None  # a box that does not report them: the configured phases hold
    d.can_switch_phases = False
    mc.build()
    mc.cycle(2000)
    assert mc.msite.chargepoints[0].phases == 3 and mc.msite.chargepoints[0].can_switch_phases is False


def test_ctl_phase_wish_alone_becomes_a_setpoint_in_observation_mode():
    mc, store, d = cycle_for(lb_enabled=False)
    mc.cycle(1000)
    assert "E2" not in mc.setpoints  # nothing asked: nothing written
    store.volatile["setpoint.E2.phs"] = 1
    mc.cycle(2000)
    assert mc.setpoints["E2"] == [None, 6000, 1]  # enable None: current and enable stay untouched
    store.volatile["setpoint.E2.cur"] = 10000
    mc.cycle(3000)
    assert mc.setpoints["E2"] == [True, 10000, 1]
