"""User-defined Modbus meters (meter_modbus, rtype 0) and the single-phase YTL DEM4A table, read by the same
TableMeter as the built-in models, against the fake client of test_devices."""
import asyncio
import struct

import pytest

from loadpilot.devices import registry
from loadpilot.devices.definition import DefinitionError
from loadpilot.devices.meter_definition import blocks, ratio, to_table
from loadpilot.site import Site

from unit.test_devices import FakeClient, put_f32, put_u32


def run(coro):
    return asyncio.run(coro)


def meter(driver, unit=1, definition=None, wiring="123"):
    d = {"dev_id": "M2", "driver": driver, "address": "COM1,9600,8,n,1", "id": unit, "role": 3, "wiring": wiring}
    if definition is not None:
        d["definition"] = definition
    return d


def site():
    s = Site()
    s.configure(["M2"])
    return s


def put_i16(regs, addr, v):
    regs[addr] = v & 0xFFFF


def three_phase_int_meter():
    """A made-up meter with integer registers, the way many cheap meters lay them out."""
    return {
        "rtype": 0, "mtype": 1, "manufacturer": "Acme",
        "modbus_read": 4, "modbus_allow_gaps": True,
        "voltage_l1": {"address": 0, "type": "uint16", "resolution": 0.1},
        "voltage_l2": {"address": 1, "type": "uint16", "resolution": 0.1},
        "voltage_l3": {"address": 2, "type": "uint16", "resolution": 0.1},
        "current_l1": {"address": "0x10", "type": "int32", "resolution": 1},        # mA
        "current_l2": {"address": "0x12", "type": "int32", "order": "lh"},         # low word first
        "current_l3": {"address": 20, "type": "int32"},
        "power_w": {"address": 0x20, "type": "float", "resolution": 1000},          # kW
        "import_wh": {"address": 0x40, "type": "int64", "resolution": 10},          # 0.01 kWh
        "export_wh": {"address": 0x44, "type": "uint32", "resolution": 10},
        "temperature": {"address": 0x30, "type": "int16", "resolution": 0.1},       # a user variable
        "type_designation": {"address": 0x100, "type": "string", "length": 4},
        "serial": {"fixed": "A-1"},
    }


def fill_int_meter(c, unit=1):
    regs = c.ir.setdefault(unit, {})
    for a in list(range(0, 0x48)) + list(range(0x100, 0x104)):
        regs[a] = 0
    for i, dv in enumerate((2301, 2289, 2315)):
        regs[i] = dv
    put_u32(regs, 0x10, 12500)
    regs[0x12], regs[0x13] = 3000 & 0xFFFF, 0  # 3000 mA, low word first
    put_u32(regs, 20, (-4000) & 0xFFFFFFFF)
    put_f32(regs, 0x20, 3.75)
    put_u32(regs, 0x40, 123456789, 4)
    put_u32(regs, 0x44, 4250)
    put_i16(regs, 0x30, -125)
    for i, pair in enumerate((b"AC", b"ME", b"-3", b"\x00\x00")):
        regs[0x100 + i] = struct.unpack(">H", pair)[0]
    return regs


def test_definition_reads_like_a_built_in_meter():
    c = FakeClient()
    fill_int_meter(c, 4)
    s = site()
    drv = registry.make(meter("meter_modbus", 4, three_phase_int_meter()), c)
    run(drv.poll(s.device("M2"), 500))
    r = s.device("M2").reading
    assert r.voltage_v == [230, 229, 232]          # 0.1 V, rounded
    assert r.current_ma == [12500, 3000, -4000]
    assert r.power_w == 3750
    assert r.import_wh == 1234567890 and r.export_wh == 42500
    assert r.updated_ms == 500
    view = drv.info()
    assert view["vars"] == {"temperature": -13}    # -12.5, rounded half away from zero
    assert view["details"] == {"manufacturer": "Acme", "serial": "A-1", "type_designation": "ACME-3"}
    # FC4; gaps allowed: one request up to 0x47 plus the identity once
    assert [x[:3] for x in c.log] == [(4, "ri", 0x100), (4, "ri", 0)]
    run(drv.poll(s.device("M2"), 1500))
    assert [x[:3] for x in c.log][2:] == [(4, "ri", 0)]  # the identity is read once per contact
    drv.lost()
    run(drv.poll(s.device("M2"), 2500))
    assert [x[:3] for x in c.log][3:] == [(4, "ri", 0x100), (4, "ri", 0)]


def test_without_gaps_each_contiguous_run_is_one_request():
    d = three_phase_int_meter()
    del d["modbus_allow_gaps"]
    t = to_table(d)
    assert t["blocks"] == ((0, 3), (0x10, 6), (0x20, 2), (0x30, 1), (0x40, 6))
    assert blocks([(0, 2), (2, 2), (1, 1), (10, 2)], 125, False) == ((0, 4), (10, 2))
    assert blocks([(0, 2), (10, 2), (200, 2)], 100, True) == ((0, 12), (200, 2))  # no request over the limit


def test_currents_follow_from_phase_power_when_the_meter_has_none():
    c = FakeClient()
    regs = c.hr.setdefault(1, {})
    for a in range(0, 8):
        regs[a] = 0
    put_i16(regs, 0, 2300)
    put_i16(regs, 1, -1150)
    put_i16(regs, 2, 0)
    put_i16(regs, 4, 2000)  # 200.0 V on L1; L2/L3 have no voltage register: 230 V nominal
    d = {"rtype": 0,
         "power_w_l1": {"address": 0, "type": "int16"}, "power_w_l2": {"address": 1, "type": "int16"},
         "power_w_l3": {"address": 2, "type": "int16"},
         "voltage_l1": {"address": 4, "type": "int16", "resolution": 0.1}}
    s = site()
    run(registry.make(meter("meter_modbus", definition=d, wiring="231"), c).poll(s.device("M2"), 0))
    r = s.device("M2").reading
    # device L1 sits on site L2 ("231"): 2300 W / 200 V = 11.5 A; device L2 exports 1150 W at 230 V
    assert r.current_ma == [0, 11500, -5000]
    assert r.power_w == 1150  # no total register: the sum of the phases


def test_reserved_values_read_as_zero_and_upd_delay_spaces_the_reads():
    c = FakeClient()
    regs = c.hr.setdefault(1, {})
    regs[0], regs[1] = 0xFFFF, 0xFFFF
    d = {"rtype": 0, "upd_delay": 5000, "reserved": [4294967295],
         "current_l1": {"address": 0, "type": "uint32"}, "power_w": {"address": 0, "type": "uint32"}}
    s = site()
    drv = registry.make(meter("meter_modbus", definition=d), c)
    run(drv.poll(s.device("M2"), 0))
    assert s.device("M2").reading.current_ma[0] == 0
    run(drv.poll(s.device("M2"), 4000))
    run(drv.poll(s.device("M2"), 5000))
    assert len(c.log) == 2 and s.device("M2").reading.updated_ms == 5000


def test_fixed_values_and_nan():
    c = FakeClient()
    regs = c.hr.setdefault(1, {})
    put_f32(regs, 0, float("nan"))
    d = {"rtype": 0, "voltage_l1": {"fixed": "230"}, "current_l1": {"address": 0, "type": "float"}}
    drv = registry.make(meter("meter_modbus", definition=d), c)
    with pytest.raises(ValueError):
        run(drv.poll(site().device("M2"), 0))  # the bus counts it as a failed read; nothing stored
    put_f32(regs, 0, 7250.0)
    s = site()
    run(drv.poll(s.device("M2"), 0))
    assert s.device("M2").reading.voltage_v[0] == 230 and s.device("M2").reading.current_ma[0] == 7250


@pytest.mark.parametrize("res, expect", [(1, (1, 1)), (0.1, (1, 10)), (0.01, (1, 100)), (1000, (1000, 1)),
                                         (-1, (-1, 1)), (2.5, (5, 2 * 1)), (0.001, (1, 1000))])
def test_resolution_as_integer_fraction(res, expect):
    mul, div = ratio(res, "x")
    assert mul / div == pytest.approx(res)
    assert (mul, div) == expect or (mul * expect[1] == expect[0] * div)


@pytest.mark.parametrize("defn, msg", [
    ({"rtype": 2, "power_w": {"address": 1, "type": "int16"}}, "needs rtype 0 (Modbus)"),
    ({"rtype": 0}, "no variable to read"),
    ({"rtype": 0, "power_w": {"address": 1}}, "power_w: needs a type"),
    ({"rtype": 0, "power_w": {"type": "int16"}}, "power_w: needs an address"),
    ({"rtype": 0, "power_w": {"address": 70000, "type": "int16"}}, "0..65535"),
    ({"rtype": 0, "power_w": {"address": "0xZZ", "type": "int16"}}, "not a register number"),
    ({"rtype": 0, "power_w": {"address": 65535, "type": "int32"}}, "past 65535"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "double"}}, "type must be one of"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "int16", "order": "be"}}, "order must be"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "int16", "resolution": 0}}, "must not be 0"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "int16", "resolution": 1e-9}}, "more than 6 decimals"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "int16", "resolution": "1"}}, "must be a number"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "string"}}, "is a number, not a string"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "int16", "expr": "1"}}, "not supported yet"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "int16"}, "outputs": []}, "outputs are not supported"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "int16"}, "modbus_read": 6}, "modbus_read must be"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "int16"}, "modbus_read_max_registers": 200}, "1..125"),
    ({"rtype": 0, "power_w": {"address": 1, "type": "int16"}, "reserved": "x"}, "reserved must be"),
    ({"rtype": 0, "bad-name": {"address": 1, "type": "int16"}}, "bad variable name"),
    ({"rtype": 0, "voltage_l1": {"fixed": "two hundred"}}, "fixed must be a number"),
    ({"rtype": 0, "type_designation": {"address": 1, "type": "string", "length": 99}}, "length must be"),
    ("not an object", "JSON object"),
])
def test_bad_definitions_are_refused_naming_the_variable(defn, msg):
    with pytest.raises(DefinitionError) as e:
        to_table(defn, "M2.definition")
    assert msg in str(e.value)


def test_dem4a_reads_only_the_l1_registers():
    c = FakeClient()
    regs = c.hr.setdefault(7, {})
    put_f32(regs, 0x000E, 229.6)
    put_f32(regs, 0x0016, 6.5)
    put_f32(regs, 0x001C, -1.495)       # kW, exporting
    put_f32(regs, 0x0108, 321.5)        # kWh forward
    put_f32(regs, 0x0110, 12.0)         # kWh reverse
    s = site()
    run(registry.make(meter("meter_dem4a", 7), c).poll(s.device("M2"), 0))  # no L2/L3 register exists here
    r = s.device("M2").reading
    assert r.voltage_v == [230, 0, 0] and r.current_ma == [-6500, 0, 0] and r.power_w == -1495
    assert r.import_wh == 321500 and r.export_wh == 12000
    assert [x[2] for x in c.log] == [0x000E, 0x0016, 0x001C, 0x0108, 0x0110]
