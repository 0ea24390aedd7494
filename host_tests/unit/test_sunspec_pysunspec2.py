"""pysunspec2 decodes our images (in memory) with the shipped model definitions for 60000-60002."""
import os
import struct

import pytest
import sunspec2.device as sdevice
from sunspec2.modbus.client import SunSpecModbusClientDevice, SunSpecModbusClientError

from loadpilot.registers import sunspec
from loadpilot.site import Reading

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "sunspec_models")


class ImageDevice(SunSpecModbusClientDevice):
    """A pysunspec2 device whose registers are our image; reads outside it fail like exception 02 would."""

    def __init__(self, image):
        SunSpecModbusClientDevice.__init__(self)
        self.image = image

    def connect(self):
        pass

    def disconnect(self):
        pass

    def read(self, addr, count, op=None):
        start = addr - self.image.base
        if start < 0 or start + count > self.image.count:
            raise SunSpecModbusClientError("Modbus exception 2")
        return bytes(self.image.buf[2 * start:2 * (start + count)])

    def write(self, addr, data):
        raise AssertionError("not used")


@pytest.fixture(autouse=True)
def model_path():
    old = sdevice.get_model_defs_path()
    sdevice.set_model_defs_path([MODELS] + list(old))
    yield
    sdevice.set_model_defs_path(old)


def test_charging_manager_map_scans_with_named_points():
    cm = sunspec.ChargingManagerMap({"serial": "LP-42", "version": "0.1.0", "model": "Garage"}, 1, ["surplus", "x"])
    cm.set_params({"max_total_current": 35000, "reserve_current": 1000, "overdraft_cur": 0,
                   "max_total_evse_current": 0, "max_imbalance_current": 20000, "lb_enabled": True,
                   "imbalance_add_home": False, "max_total_cur_prc": 70})
    cm.set_flag(2, 1)
    cm.set_var(1, 4.5)
    r = Reading()
    r.update(current_ma=[10000, 11000, 12000], import_wh=42000)
    cm.set_total(0, r)
    d = ImageDevice(cm.image)
    d.scan()
    assert [(m, len(d.models[m])) for m in (1, 213, 60000, 60001, 60002)] == [
        (1, 1), (213, 7), (60000, 1), (60001, 1), (60002, 1)]
    common = d.models[1][0]
    assert common.Mn.value == "LoadPilot" and common.SN.value == "LP-42" and common.Md.value == "Garage"
    assert [m.model_addr for m in d.models[213]] == [40070, 40196, 40322, 40448, 40574, 40700, 40826]
    grid = d.models[213][0]
    assert grid.AphB.value == pytest.approx(11.0) and grid.TotWhImp.value == 42000.0
    p = d.models[60000][0]
    assert p.model_addr == 40952 and p.MaxTotCur.value == 35000.0 and p.MaxTotCurPct.value == 70.0
    assert p.LbActive.value == 1.0 and p.Reserve.value == 1000.0
    flags = d.models[60001][0]
    assert flags.model_addr == 40970 and flags.Flag3.value == 1 and flags.Flag1.value == 0
    v = d.models[60002][0]
    assert v.model_addr == 41004
    assert [(g.Name.value, g.Val.value) for g in v.var] == [("surplus", None), ("x", 4.5)]


def test_device_map_scans_with_status_role_and_device_id():
    devices = [{"dev_id": "E1"}, {"dev_id": "E2"}, {"dev_id": "E3"}, {"dev_id": "M1", "role": 3},
               {"dev_id": "M2", "role": 2}, {"dev_id": "M3", "role": 5}]
    dm = sunspec.DeviceMap(devices)
    r = Reading()
    r.update(current_ma=[16000, 16000, 16000], import_wh=9000)
    dm.set_evse("E2", r, 3)
    dm.set_storage("M3", 5000, None, None, 64)
    d = ImageDevice(dm.image)
    d.scan()
    evses = d.models[113]
    assert len(evses) == 3 and len(d.models[213]) == 3 and len(d.models[124]) == 1
    raw = lambda m, off: struct.unpack(">h", dm.image.buf[2 * (m.model_addr + off - 40000):][:2])[0]
    assert [raw(m, 63) for m in evses] == [1, 2, 3]
    assert [raw(m, 62) for m in evses] == [5, 3, 5]
    assert evses[1].A.value == 48.0 and evses[1].WH.value == 9000.0
    meters = d.models[213]
    assert [(raw(m, 126), raw(m, 127)) for m in meters] == [(3, -1), (2, -2), (5, -3)]
    st = d.models[124][0]
    assert st.WChaMax.value == 5000 and st.ChaState.value == 64 and raw(st, 26) == -3
