"""User-defined Modbus meters and the YTL DEM4A on the real MicroPython binary: the firmware as RTU master
of a pty bus (pymodbus peers), a definition file as the grid meter holding the fuse, and a definition the
layer could not read refused when it is set."""
import pytest

from site_rig import METER, SiteRig, f32_words

pytestmark = pytest.mark.mp
COM = "COM1,19200,8,n,1"

# the SDM630 peer described by a definition instead of the built-in table
SDM630_DEF = {
    "rtype": 0, "mtype": 1, "manufacturer": "Eastron (user file)", "modbus_read": 4,
    "voltage_l1": {"address": 0, "type": "float"}, "voltage_l2": {"address": 2, "type": "float"},
    "voltage_l3": {"address": 4, "type": "float"},
    "current_l1": {"address": 6, "type": "float", "resolution": 1000},
    "current_l2": {"address": 8, "type": "float", "resolution": 1000},
    "current_l3": {"address": 10, "type": "float", "resolution": 1000},
    "power_w_l1": {"address": 12, "type": "float"}, "power_w_l2": {"address": 14, "type": "float"},
    "power_w_l3": {"address": 16, "type": "float"},
    "power_w": {"address": "0x34", "type": "float"},
    "import_wh": {"address": "0x48", "type": "float", "resolution": 1000},
    "export_wh": {"address": "0x4A", "type": "float", "resolution": 1000},
}

INT_DEF = {
    "rtype": 0, "modbus_read": 4, "modbus_allow_gaps": True, "manufacturer": "Acme",
    "voltage_l1": {"address": 0, "type": "uint16", "resolution": 0.1},
    "voltage_l2": {"address": 1, "type": "uint16", "resolution": 0.1},
    "voltage_l3": {"address": 2, "type": "uint16", "resolution": 0.1},
    "current_l1": {"address": "0x10", "type": "int32"},
    "current_l2": {"address": "0x12", "type": "int32", "order": "lh"},
    "current_l3": {"address": 20, "type": "int32"},
    "power_w": {"address": 32, "type": "float", "order": "lh", "resolution": 1000},
    "import_wh": {"address": 64, "type": "int64", "resolution": 10},
    "temperature": {"address": 48, "type": "int16", "resolution": 0.1},
    "type_designation": {"address": 256, "type": "string", "length": 4},
}


def devices():
    return [{"dev_id": "M1", "driver": "meter_modbus", "address": COM, "id": METER, "role": 3,
             "definition": SDM630_DEF},
            {"dev_id": "M2", "driver": "meter_dem4a", "address": COM, "id": 101, "role": 0, "wiring": "231"},
            {"dev_id": "M3", "driver": "meter_modbus", "address": COM, "id": 102, "role": 0, "definition": INT_DEF},
            {"dev_id": "E2", "driver": "evse_powerbrain", "address": COM, "id": 1, "max_charging_cur": 16000}]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    r = SiteRig(n_boxes=1, max_total_ma=32000, tmp_dir=str(tmp_path_factory.mktemp("fs")), devices=devices())
    yield r
    r.close()


def comm(rig):
    return {d["dev_id"]: d for d in rig.fw.status()["device_comm"]}


def test_definitions_and_dem4a_read_on_the_binary(rig):
    got = rig.wait(lambda: (lambda c: c if all(c.get(k, {}).get("updated_ms") or c.get(k, {}).get("import_wh")
                                                for k in ("M1", "M2", "M3")) else None)(comm(rig)))
    assert got, comm(rig)
    m1, m2, m3 = got["M1"], got["M2"], got["M3"]
    assert m1["com_err"] is False and m1["current_ma"] == [10000, 5500, -2000], m1  # L3 exports: negative
    assert m1["voltage_v"] == [230, 231, 229] and m1["import_wh"] == 4321000 and m1["export_wh"] == 12500, m1
    assert m1["details"] == {"manufacturer": "Eastron (user file)"}, m1
    # DEM4A: single phase, device L1 wired to site L2
    assert m2["com_err"] is False and m2["current_ma"] == [0, 7250, 0] and m2["voltage_v"] == [0, 230, 0], m2
    assert m2["power_w"] == 1660 and m2["import_wh"] == 812500 and m2["export_wh"] == 3500, m2
    # integers, low-word-first values, a 64-bit counter, a string read once, a user variable
    assert m3["com_err"] is False and m3["current_ma"] == [12500, 3000, -4000], m3
    assert m3["voltage_v"] == [230, 229, 232] and m3["power_w"] == 3750 and m3["import_wh"] == 1234567890, m3
    assert m3["details"] == {"manufacturer": "Acme", "type_designation": "ACME-3"}, m3
    assert m3["vars"] == {"temperature": -13}, m3


def test_a_user_defined_grid_meter_holds_the_fuse(rig):
    assert rig.wait(lambda: rig.offered_ma(1) >= 6000), rig.fw.status()["device_comm"]
    for i in range(3):  # 30 A on every phase of a 32 A connection: the box must drop to its minimum or pause
        rig.peers.cmd(op="set", unit=METER, addr=6 + 2 * i, values=f32_words(30.0), fc=4)
    for i in range(3):
        rig.peers.cmd(op="set", unit=METER, addr=12 + 2 * i, values=f32_words(6900.0), fc=4)
    before = rig.offered_ma(1)
    assert rig.wait(lambda: rig.offered_ma(1) < before or rig.offered_ma(1) == 0, timeout=20), \
        (before, rig.offered_ma(1), comm(rig)["M1"])
    for i in range(3):
        rig.peers.cmd(op="set", unit=METER, addr=6 + 2 * i, values=f32_words(2.0), fc=4)


def test_a_definition_the_layer_could_not_read_is_refused_and_changes_nothing(rig):
    bad = devices()
    bad[2] = dict(bad[2], definition=dict(INT_DEF, current_l2={"address": 18, "type": "int32", "order": "be"}))
    with pytest.raises(RuntimeError) as e:
        rig.fw.ctl("config_set", values={"devices": bad, "title": "changed"})
    assert "devices[2].definition" in str(e.value) and "order must be" in str(e.value), e.value
    grid_only_power = devices()
    grid_only_power[0] = dict(grid_only_power[0], definition={"rtype": 0, "modbus_read": 4,
                                                              "power_w": {"address": "0x34", "type": "float"}})
    with pytest.raises(RuntimeError) as e:
        rig.fw.ctl("config_set", key="devices", value=grid_only_power)
    assert "devices[0].definition" in str(e.value) and "a grid meter needs" in str(e.value), e.value
    stored = rig.fw.ctl("config_get", key="devices")
    assert stored[0]["definition"] == SDM630_DEF, stored
    assert rig.fw.ctl("config_get", key="title") != "changed"
