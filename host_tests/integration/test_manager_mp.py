"""The Charging Manager cycle on the MicroPython binary: the local charge point managed against the house
connection, with a grid meter whose readings are pushed (as an HTTP/MQTT input meter would be)."""
import time

import pytest

from firmware_proc import Firmware, free_port, wait_for

pytestmark = pytest.mark.mp

DEVICES = [{"dev_id": "E1", "driver": "evse_local", "address": "evse", "max_charging_cur": 16000},
           {"dev_id": "M1", "driver": "http_input", "role": 3}]




def e1(fw):
    return {d["dev_id"]: d for d in fw.status()["devices"]}["E1"]


def grid(fw, ma):
    fw.ctl("site", readings={"M1": {"current_ma": [ma, ma, ma], "voltage_v": [230, 230, 230]}})


def test_fuse_limit_and_grid_meter_fail_safe(tmp_path):
    cfg = {"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "max_total_current": 20000, "meter_timeout_s": 4,
           "grid_fail_safe_current": 6000, "devices": DEVICES}
    with Firmware(fs_dir=str(tmp_path), config=cfg) as fw:
        fw.ctl("set_adc", name="cp", mv=9000)
        time.sleep(0.3)
        fw.ctl("set_adc", name="cp", mv=6000)  # the car wants to charge
        grid(fw, 3000)
        assert wait_for(lambda: e1(fw).get("alloc_ma", 0) >= 6000)
        # a quiet house: the car ramps up to its own maximum, slowly
        for _ in range(12):
            grid(fw, 3000 + e1(fw).get("alloc_ma", 0))
            time.sleep(0.6)
        high = e1(fw)
        assert high["alloc_ma"] > 6000, high
        # the grid meter falls silent: after meter_timeout_s the fail-safe budget applies (6 A per phase)
        t_silent = time.monotonic()
        assert wait_for(lambda: e1(fw).get("reason") == "failsafe", timeout=12)
        assert time.monotonic() - t_silent < 4 + 2 * 2 + 1.5  # the timeout plus at most two cycles
        assert e1(fw)["alloc_ma"] <= 6000
        assert wait_for(lambda: fw.ctl("evse")["limit"]["manager_ma"] <= 6000, timeout=1)  # the driver applies it
        # the meter is back and the house switches a big load on: above the fuse, the car is cut at once
        grid(fw, 26000)
        assert wait_for(lambda: e1(fw)["alloc_ma"] == 0, timeout=6)
        cut = e1(fw)
        assert cut["reason"] in ("fuse", "overdraw"), cut
        assert wait_for(lambda: fw.ctl("evse")["limit"]["manager_ma"] == 0, timeout=1)
        assert wait_for(lambda: fw.ctl("evse")["offered_ma"] == 0, timeout=3)  # applied on the next CP tick


def test_load_shedding_input_takes_its_offsets_off(tmp_path):
    cfg = {"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "max_total_current": 20000, "devices": DEVICES,
           "shedding_enabled": True, "shedding_active_level": 1, "shedding_offsets": [10000, 10000, 10000]}
    with Firmware(fs_dir=str(tmp_path), config=cfg) as fw:
        fw.ctl("set_adc", name="cp", mv=9000)
        time.sleep(0.3)
        fw.ctl("set_adc", name="cp", mv=6000)
        for _ in range(10):
            grid(fw, 2000 + e1(fw).get("alloc_ma", 0))
            time.sleep(0.7)
        before = e1(fw)["alloc_ma"]
        assert before > 8000
        fw.ctl("set_input", name="load_shed", value=1)  # the utility's contact closes
        for _ in range(6):
            grid(fw, 2000 + e1(fw).get("alloc_ma", 0))
            time.sleep(0.7)
        shed = e1(fw)
        assert shed["alloc_ma"] <= 20000 - 10000 - 2000 and shed["reason"] == "shedding", shed
