"""Safe from the first millisecond, on the MicroPython binary: a box that boots with a car already charging (CP
state C) never offers more than its limits allow, from the first PWM edge on, and the same holds after a
reconfiguration. Every PWM duty the virtual board was given is in its event log."""
import time

import pytest

from firmware_proc import Firmware, wait_for, wait_until
from loadpilot.evse.pilot import current_ma_for_duty

pytestmark = pytest.mark.mp

CAR_CHARGING = "cp=6000"  # 6 V on the CP line: an EV in state C


def offered(fw):
    """Every current the PWM offered since boot, in mA, in order (the virtual board's events)."""
    return [current_ma_for_duty(v) for _, name, v in fw.ctl("events") if name == "pwm.cp"]


def boot(config, tmp_path):
    fw = Firmware(config=dict(config, modbus_tcp_port=0, pb_tcp_port=0), fs_dir=str(tmp_path),
                  env={"LOADPILOT_VB_ADC": CAR_CHARGING})
    return fw.start()


def test_car_charging_at_boot_under_a_10_a_fuse_never_sees_more(tmp_path):
    with boot({"max_total_current": 10000}, tmp_path) as fw:
        wait_until(lambda: fw.ctl("evse")["contactor"] == 1)
        time.sleep(3)  # past the manager's first decisions
        seen = offered(fw)
        assert seen and max(seen) <= 10000, seen
        assert seen[-1] > 0  # and it charges
        e1 = [d for d in fw.status()["devices"] if d["dev_id"] == "E1"][0]
        assert e1["state"] == 3


def test_with_other_wallboxes_the_start_limit_is_the_minimum_current(tmp_path):
    # a second box shares the connection: until the manager has decided, E1 takes the lower of its minimum
    # current and its fail-safe current (docs/manager.md, "Before the first decision")
    devices = [{"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "min_charging_cur": 6000,
                "max_charging_cur": 32000, "fail_safe_current": 8000},
               {"dev_id": "E2", "driver": "http_input", "address": ""}]
    with boot({"max_total_current": 10000, "devices": devices}, tmp_path) as fw:
        wait_until(lambda: fw.ctl("evse")["contactor"] == 1)
        first = wait_for(lambda: [ma for ma in offered(fw) if ma > 0])
        assert first[0] == 6000, first  # the first current the car is offered is the start limit
        time.sleep(3)
        assert max(offered(fw)) <= 10000


def test_a_lowered_fuse_holds_at_once_after_a_reconfiguration(tmp_path):
    with boot({"max_total_current": 32000}, tmp_path) as fw:
        wait_until(lambda: fw.ctl("evse")["offered_ma"] >= 16000, timeout=20)  # ramped up (slow up: 2 A a cycle)
        fw.ctl("events", clear=True)
        fw.ctl("config_set", key="max_total_current", value=8000)
        wait_until(lambda: 0 < fw.ctl("evse")["offered_ma"] <= 8000, timeout=2)
        time.sleep(2.5)
        later = offered(fw)
        assert later and max(later) <= 8000, later
