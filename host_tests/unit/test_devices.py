"""Device layer on CPython: meter tables, address parsing, the wallbox drivers and bus scheduling against a
fake Modbus client and a clock the test steps."""
import asyncio
import struct

import pytest

from loadpilot.devices import address, decode, registry
from loadpilot.devices.bus import Bus, Entry
from loadpilot.devices.layer import DeviceLayer
from loadpilot.devices import meter_tables
from loadpilot.modbus.errors import ModbusError, ModbusTimeout
from loadpilot.site import Site


class FakeClient:
    """Units with holding/input register dicts; records every request; a silent unit times out."""

    def __init__(self, clock=None):
        self.hr = {}
        self.ir = {}
        self.log = []
        self.silent = set()
        self.clock = clock

    def _regs(self, table, unit, addr, count):
        if unit in self.silent:
            raise ModbusTimeout("unit %d: no answer" % unit)
        regs = table.setdefault(unit, {})
        out = bytearray()
        for a in range(addr, addr + count):
            if a not in regs:
                raise ModbusError(2, 3)
            out += struct.pack(">H", regs[a])
        return memoryview(out)

    async def read_holding(self, addr, count, unit=None):
        self.log.append((unit, "r", addr))
        return self._regs(self.hr, unit, addr, count)

    async def read_input(self, addr, count, unit=None):
        self.log.append((unit, "ri", addr))
        return self._regs(self.ir, unit, addr, count)

    closed = 0

    async def close(self):
        self.closed += 1

    async def write_single(self, addr, value, unit=None):
        await self.write_multiple(addr, [value], unit)

    async def write_multiple(self, addr, values, unit=None):
        self.log.append((unit, "w", addr, list(values)))
        if unit in self.silent:
            raise ModbusTimeout("unit %d: no answer" % unit)
        regs = self.hr.setdefault(unit, {})
        for i, v in enumerate(values):
            regs[addr + i] = v


def put_f32(regs, addr, value):
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    regs[addr], regs[addr + 1] = hi, lo


def put_u32(regs, addr, value, words=2):
    for i in range(words):
        regs[addr + i] = (value >> (16 * (words - 1 - i))) & 0xFFFF


def sdm630(client, unit, volts=(231.4, 229.6, 230.0), amps=(10.5, 3.25, 0.0), watts=(2400.0, -700.0, 0.0),
           imp_kwh=1234.567, exp_kwh=89.0):
    regs = client.ir.setdefault(unit, {})
    for a in range(0, 0x50):
        regs.setdefault(a, 0)
    for i in range(3):
        put_f32(regs, 2 * i, volts[i])
        put_f32(regs, 6 + 2 * i, amps[i])
        put_f32(regs, 12 + 2 * i, watts[i])
    put_f32(regs, 0x34, sum(watts))
    put_f32(regs, 0x48, imp_kwh)
    put_f32(regs, 0x4A, exp_kwh)


def powerbrain(client, unit, state=2, charging_a10=160, has_meter=1, fail_safe_s=300):
    regs = client.hr.setdefault(unit, {})
    for a in range(8000, 8122):
        regs.setdefault(a, 0)
    put_u32(regs, 8058, 7120572, 4)
    put_u32(regs, 8062, 11040)
    for i, ma in enumerate((16000, 15900, 15800)):
        put_u32(regs, 8064 + 2 * i, ma // 100)
    put_u32(regs, 8083, fail_safe_s)
    regs[8092] = state
    regs[8093] = 160
    regs[8094] = 1
    regs[8095] = charging_a10
    regs[8112] = has_meter


def run(coro):
    return asyncio.run(coro)


def meter_dev(dev_id="M1", unit=1, role=3, driver="meter_sdm630", wiring="123"):
    return {"dev_id": dev_id, "driver": driver, "id": unit, "role": role, "address": "COM1,19200,8,n,1",
            "wiring": wiring}


def box_dev(dev_id, unit, driver="evse_powerbrain", address_="COM1,19200,8,n,1"):
    return {"dev_id": dev_id, "driver": driver, "id": unit, "address": address_, "phases": 3}


# -- meter tables ------------------------------------------------------------------------------------------

def test_sdm630_registers_decode_to_integer_units():
    c = FakeClient()
    sdm630(c, 5)
    site = Site()
    site.configure(["M1"])
    drv = registry.make(meter_dev(unit=5), c)
    run(drv.poll(site.device("M1"), 1234))
    r = site.device("M1").reading
    assert r.voltage_v == [231, 230, 230]
    assert r.current_ma == [10500, -3250, 0]  # L2 exports: its current is negative like its power
    assert r.phase_w == [2400, -700, 0]
    assert r.power_w == 1700
    assert r.import_wh == 1234567
    assert r.export_wh == 89000
    assert r.updated_ms == 1234
    assert [x[:3] for x in c.log] == [(5, "ri", 0), (5, "ri", 0x34), (5, "ri", 0x48)]  # FC4, three blocks


def test_sdm72_uses_the_same_addresses():
    assert meter_tables.table("meter_sdm72") == meter_tables.table("meter_sdm630")


def test_dts353_holding_float_registers_in_kw_and_kwh():
    c = FakeClient()
    regs = c.hr.setdefault(3, {})
    for a in list(range(0x000E, 0x0024)) + list(range(0x0108, 0x0112)):
        regs[a] = 0

    def f32(addr, x):
        hi, lo = struct.unpack(">HH", struct.pack(">f", x))
        regs[addr], regs[addr + 1] = hi, lo
    for i, v in enumerate((229.5, 231.0, 230.2)):
        f32(0x000E + 2 * i, v)
    for i, a in enumerate((8.0, 0.5, 4.25)):
        f32(0x0016 + 2 * i, a)
    f32(0x001C, 2.7)                    # kW
    for i, kw in enumerate((1.84, -0.115, 0.975)):
        f32(0x001E + 2 * i, kw)
    f32(0x0108, 1234.5)                 # kWh import (forward)
    f32(0x0110, 6.25)                   # kWh export (reverse)
    site = Site()
    site.configure(["M3"])
    run(registry.make(meter_dev("M3", 3, 3, "meter_dts353"), c).poll(site.device("M3"), 0))
    r = site.device("M3").reading
    assert r.voltage_v == [230, 231, 230]
    assert r.current_ma == [8000, -500, 4250]  # L2 exports
    assert r.phase_w == [1840, -115, 975] and r.power_w == 2700
    assert r.import_wh == 1234500 and r.export_wh == 6250
    assert [x[:3] for x in c.log] == [(3, "r", 0x000E), (3, "r", 0x0108)]  # FC3, two blocks


def test_abb_b23_integer_registers():
    c = FakeClient()
    regs = c.hr.setdefault(1, {})
    for a in list(range(0x5000, 0x5008)) + list(range(0x5B00, 0x5B1C)):
        regs[a] = 0
    put_u32(regs, 0x5000, 123456, 4)   # 1234.56 kWh import
    put_u32(regs, 0x5004, 50, 4)       # 0.5 kWh export
    for i, dv in enumerate((2301, 2315, 2299)):
        put_u32(regs, 0x5B00 + 2 * i, dv)
    for i, ca in enumerate((1234, 0, 567)):
        put_u32(regs, 0x5B0C + 2 * i, ca)
    put_u32(regs, 0x5B14, (-150000) & 0xFFFFFFFF)  # -1500 W total
    put_u32(regs, 0x5B16, (-150000) & 0xFFFFFFFF)
    site = Site()
    site.configure(["M2"])
    run(registry.make(meter_dev("M2", 1, 0, "meter_abb_b23"), c).poll(site.device("M2"), 0))
    r = site.device("M2").reading
    assert r.import_wh == 1234560 and r.export_wh == 500
    assert r.voltage_v == [230, 232, 230]  # 0.1 V, rounded
    assert r.current_ma == [-12340, 0, 5670]
    assert r.power_w == -1500


def test_wiring_moves_device_phases_onto_site_phases():
    c = FakeClient()
    sdm630(c, 1, amps=(1.0, 2.0, 3.0), watts=(230.0, 460.0, 690.0))
    site = Site()
    site.configure(["M1"])
    run(registry.make(meter_dev(wiring="231"), c).poll(site.device("M1"), 0))
    # device L1 is on site L2, device L2 on site L3, device L3 on site L1
    assert site.device("M1").reading.current_ma == [3000, 1000, 2000]


def test_a_nan_register_is_an_error_not_a_reading():
    regs = bytearray(struct.pack(">f", float("nan")))
    with pytest.raises(ValueError):
        decode.scaled("f32", regs, 0, 1000, 1)


def test_unknown_driver_names_the_known_ones():
    with pytest.raises(ValueError) as e:
        registry.make({"dev_id": "M1", "driver": "meter_no_such_model"}, FakeClient())
    assert "meter_sdm630" in str(e.value)


# -- addresses ---------------------------------------------------------------------------------------------

def test_registry_names_every_meter_table_without_importing_it():
    # the registry lists driver names only (a driver's module is imported when a device needs it)
    assert sorted(registry.TABLE_NAMES) == sorted(meter_tables.names())
    assert meter_tables.table("meter_no_such_model") is None


def test_address_forms():
    assert address.parse("192.168.2.151:4701") == ("tcp", "192.168.2.151", 4701)
    assert address.parse("10.0.0.7") == ("tcp", "10.0.0.7", 502)
    kind, st = address.parse("COM2,19200,8,e,1")
    assert kind == "rtu" and st.baud == 19200 and st.parity == "e" and st.board_uart() == "rs485_2"
    assert address.parse("evse") == ("local", "evse")
    assert address.parse("Meter1") == ("local", "meter1")
    assert address.parse("") == ("push", None)
    assert address.bus_key(address.parse("COM1,9600,8,n,1")) == address.bus_key(address.parse("COM1,9600,8,n,1"))
    assert address.bus_key(address.parse("1.2.3.4:502")) == "tcp:1.2.3.4:502"


@pytest.mark.parametrize("bad", ["wallbox.local:502", "1.2.3:502", "1.2.3.4:0", "1.2.3.4:x", "COM1,12,8,n,1"])
def test_bad_addresses_are_refused(bad):
    with pytest.raises(ValueError):
        address.parse(bad)


def test_layer_shares_one_transport_per_bus_and_skips_local_devices():
    opened = []

    def open_rtu(st):
        opened.append(st.port)
        return FakeClient()

    def open_tcp(host, port):
        opened.append((host, port))
        return FakeClient()

    devs = [box_dev("E1", 1, address_="evse"), box_dev("E2", 2), box_dev("E3", 3),
            box_dev("E4", 1, "evse_omcci", "192.168.1.20:502"), box_dev("E5", 2, "evse_omcci", "192.168.1.20:502"),
            box_dev("E6", 1, address_="name.local:502"), meter_dev("M1", 9),
            {"dev_id": "M2", "driver": "http_input", "address": ""}]
    site = Site()
    site.configure([d["dev_id"] for d in devs])
    layer = DeviceLayer(devs, site, {}, open_rtu, open_tcp)
    assert sorted(map(str, opened)) == sorted(map(str, ["COM1", ("192.168.1.20", 502)]))
    assert [b.view()["devices"] for b in layer.buses] == [["M1", "E2", "E3"], ["E4", "E5"]]  # grid meter first
    assert [s[0] for s in layer.skipped] == ["E6"]
    assert [v["dev_id"] for v in layer.view()] == ["E2", "E3", "E4", "E5", "M1", "M2"]
    names = [n for n, _ in layer.tasks()]
    assert names == ["dev_rtu_COM1", "dev_tcp_192.168.1.20_502", "dev_push_watch"]
    run(layer.close())  # a rebuilt layer releases every transport it opened, once
    assert [b.client.closed for b in layer.buses] == [1, 1]


# -- scheduling with a fake clock --------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now


def make_bus(n_boxes=3, fail_safe_s=300):
    c = FakeClient()
    clock = Clock()
    sdm630(c, 100)
    devs = [box_dev("E%d" % (i + 1), i + 1) for i in range(n_boxes)] + [meter_dev("M1", 100)]
    for i in range(n_boxes):
        powerbrain(c, i + 1, fail_safe_s=fail_safe_s)
    site = Site()
    site.configure([d["dev_id"] for d in devs])
    setpoints = {}
    entries = [Entry(d, registry.make(d, c), site.device(d["dev_id"])) for d in devs]
    return Bus("rtu:COM1", entries, site, setpoints, clock), c, clock, site, setpoints


def test_cycle_reads_grid_meter_first_then_boxes_in_turn():
    bus, c, clock, site, sp = make_bus()
    run(bus.cycle())
    units = []
    for x in c.log:
        if not units or units[-1] != x[0]:
            units.append(x[0])
    assert units == [100, 1, 2, 3]
    assert site.device("E1").status == 3  # 8092 = 2 (C): charging
    assert site.device("E2").reading.current_ma == [16000, 15900, 15800]
    assert site.device("E2").reading.import_wh == 7120572
    assert site.device("M1").reading.power_w == 1700


def test_setpoints_are_written_on_change_and_as_keepalive_inside_the_fail_safe_window():
    bus, c, clock, site, sp = make_bus(n_boxes=1, fail_safe_s=300)
    run(bus.cycle())
    assert [x for x in c.log if x[1] == "w"] == []  # nothing asked yet: nothing written
    sp["E1"] = (True, 10000, 3)
    run(bus.cycle())
    assert c.hr[1][8093] == 100 and c.hr[1][8094] == 1
    writes = lambda: len([x for x in c.log if x[1] == "w"])  # noqa: E731
    assert writes() == 1
    clock.now += 30000
    run(bus.cycle())
    assert writes() == 1  # unchanged, keep-alive not yet due
    clock.now += 31000  # 61 s after the write: a fifth of the 300 s window has passed
    run(bus.cycle())
    assert writes() == 2
    sp["E1"] = (False, 10000, 3)
    run(bus.cycle())
    assert writes() == 3 and c.hr[1][8094] == 0
    sp["E1"] = (True, 2000, 3)  # below the 6 A the map takes: the slave would refuse it
    run(bus.cycle())
    assert c.hr[1][8093] == 60


def test_a_silent_box_goes_offline_is_retried_sparingly_and_rejoins():
    bus, c, clock, site, sp = make_bus(n_boxes=3)
    sp["E2"] = (True, 16000, 3)
    run(bus.cycle())
    c.hr[2][8093] = 0  # the box restarted and forgot the set-point
    c.silent.add(2)
    run(bus.cycle())
    e2 = bus.entries[2]
    assert e2.dev_id == "E2" and e2.com_err and e2.com_errors == 1
    assert site.device("E2").status == 6
    assert "no answer" in e2.last_error
    assert site.device("E1").status == 3 and site.device("E3").status == 3  # the others were still read
    asks = lambda: len([x for x in c.log if x[0] == 2])  # noqa: E731
    n = asks()
    run(bus.cycle())
    run(bus.cycle())
    assert asks() == n  # skipped on the next two cycles
    run(bus.cycle())
    assert asks() == n + 1 and e2.com_errors == 2  # retried on the third
    c.silent.discard(2)
    for _ in range(3):
        run(bus.cycle())
    assert not e2.com_err and site.device("E2").status == 3
    assert c.hr[2][8093] == 160  # set-point sent again on the new contact, unchanged or not


def test_box_without_meter_reports_the_signalled_current_on_its_phases():
    bus, c, clock, site, sp = make_bus(n_boxes=1)
    c.hr[1][8112] = 0
    c.hr[1][8095] = 100
    bus.entries[1].dev["phases"] = 1
    bus.entries[1].driver.phases = 1
    run(bus.cycle())
    assert site.device("E1").reading.current_ma == [10000, 0, 0]


def test_omcci_station_init_readings_and_hems_limit():
    c = FakeClient()
    regs = c.hr.setdefault(7, {})
    for a in list(range(100, 228)) + [1000]:
        regs[a] = 0
    regs[122] = 2  # B: vehicle plugged
    for i, ma in enumerate((8000, 7000, 0)):
        put_u32(regs, 212 + 2 * i, ma)
    put_u32(regs, 218, 55555)
    put_u32(regs, 220, 3450)
    for i in range(3):
        put_u32(regs, 222 + 2 * i, 229)
    site = Site()
    site.configure(["E4"])
    dev = dict(box_dev("E4", 7, "evse_omcci", "192.168.1.20:502"), fail_safe_current=8000, fail_safe_secs=120)
    drv = registry.make(dev, c)
    st = site.device("E4")
    run(drv.poll(st, 0))
    assert regs[131] == 8 and regs[132] == 120
    assert st.status == 2
    assert st.reading.current_ma == [8000, 7000, 0] and st.reading.import_wh == 55555
    assert st.reading.power_w == 3450 and st.reading.voltage_v == [229, 229, 229]
    run(drv.apply((True, 13500, 3), 0))
    assert regs[1000] == 13
    run(drv.apply((False, 13500, 3), 10))
    assert regs[1000] == 0


def test_pushed_device_goes_com_err_after_its_timeout():
    site = Site()
    site.configure(["M3"])
    clock = Clock()
    layer = DeviceLayer([{"dev_id": "M3", "driver": "mqtt_input", "address": "", "push_timeout": 10}], site,
                        clock=clock)
    clock.now = 5000
    site.push({"M3": {"power_w": 100}}, clock.now)
    clock.now = 14000
    layer.check_pushed(clock.now)
    assert layer.view()[0]["com_err"] is False
    clock.now = 15001 + 1000
    layer.check_pushed(clock.now)
    v = layer.view()[0]
    assert v["com_err"] is True and v["com_errors"] == 1 and "no data" in v["last_error"]
    site.push({"M3": {"power_w": 120}}, clock.now)
    layer.check_pushed(clock.now)
    assert layer.view()[0]["com_err"] is False


def test_a_bus_this_box_serves_as_slave_is_not_mastered():
    opened = []
    site = Site()
    site.configure(["E2", "E3"])
    layer = DeviceLayer([box_dev("E2", 2), box_dev("E3", 3, address_="COM2,9600,8,n,1")], site, {},
                        lambda st: opened.append(st.port) or FakeClient(), None, slave_ports=("COM1",))
    assert opened == ["COM2"]
    assert layer.skipped[0][0] == "E2" and "slave port" in layer.skipped[0][1]


# -- SunSpec reader ----------------------------------------------------------------------------------------

def test_sunspec_layout_offsets_match_the_sunspec_model_definitions():
    import json
    import os

    import sunspec2
    from loadpilot.devices import meter_sunspec as ms
    names = {"i": ("AphA", "AphB", "AphC"), "v": ("PhVphA", "PhVphB", "PhVphC"), "wph": ("WphA", "WphB", "WphC"),
             "w": "W", "imp": ("TotWhImp", "WH"), "exp": "TotWhExp", "i_sf": "A_SF", "v_sf": "V_SF",
             "w_sf": "W_SF", "e_sf": ("TotWh_SF", "WH_SF")}
    d = os.path.join(os.path.dirname(sunspec2.__file__), "models", "json")
    for model, lay in ms.LAYOUTS.items():
        offsets = {}
        off = 0
        for p in json.load(open(os.path.join(d, "model_%d.json" % model)))["group"]["points"]:
            offsets[p["name"]] = off
            off += p.get("size", 1)
        for key, val in lay.items():
            if key in ("kind", "signed"):
                continue
            want = names[key]
            if isinstance(val, tuple):
                assert tuple(offsets[n] for n in want) == val, (model, key)
            else:
                cands = want if isinstance(want, tuple) else (want,)
                assert val in [offsets[n] for n in cands if n in offsets], (model, key)


class ImageClient:
    """Reads from a modbus.image.RegisterImage (our own SunSpec server's image)."""

    def __init__(self, img):
        self.img = img

    async def read_holding(self, addr, count, unit=None):
        out = bytearray(2 * count)
        try:
            self.img.read_regs(3, addr, count, out, 0)
        except Exception:
            raise ModbusError(2, 3)
        return memoryview(out)


def test_sunspec_reader_reads_a_float_meter_from_our_own_sunspec_server_image():
    from loadpilot.registers.sunspec import ChargingManagerMap
    from loadpilot.site import Reading
    cm = ChargingManagerMap({}, 1, [])
    r = Reading()
    r.update(current_ma=[12000, -3000, 500], voltage_v=[231, 229, 230], import_wh=98765, export_wh=4321,
             phase_w=[2772, -687, 115], now_ms=0)
    cm.set_total(0, r)  # grid: the first model 213
    site = Site()
    site.configure(["M5"])
    drv = registry.make({"dev_id": "M5", "driver": "meter_sunspec", "id": 1}, ImageClient(cm.image))
    run(drv.poll(site.device("M5"), 0))
    got = site.device("M5").reading
    assert drv.model == 213 and drv.model_addr == cm.addr_totals[0]
    assert got.current_ma == [12000, -3000, 500]
    assert got.voltage_v == [231, 229, 230]
    assert got.import_wh == 98765 and got.export_wh == 4321
    assert got.phase_w == [2772, -687, 115]


def test_sunspec_reader_int_models_with_scale_factors():
    c = FakeClient()
    regs = c.hr.setdefault(3, {})
    for a in range(40000, 40300):
        regs[a] = 0
    regs[40000], regs[40001] = 0x5375, 0x6E53
    regs[40002], regs[40003] = 1, 66  # common model, skipped
    m = 40070
    regs[m], regs[m + 1] = 203, 105
    regs[m + 3], regs[m + 4], regs[m + 5], regs[m + 6] = 1234, 56, 0x10000 - 78, 0x10000 - 2  # A, SF -2
    regs[m + 8], regs[m + 9], regs[m + 10], regs[m + 15] = 2305, 2298, 2311, 0x10000 - 1   # V, SF -1
    regs[m + 18], regs[m + 19], regs[m + 20], regs[m + 21], regs[m + 22] = 280, 130, 0, 0x10000 - 180, 1
    put_u32(regs, m + 38, 777)
    put_u32(regs, m + 46, 123456)
    regs[m + 54] = 1  # energy x10
    regs[m + 107] = 0xFFFF
    site = Site()
    site.configure(["M6"])
    drv = registry.make({"dev_id": "M6", "driver": "meter_sunspec", "id": 3}, c)
    run(drv.poll(site.device("M6"), 0))
    got = site.device("M6").reading
    assert drv.model == 203
    assert got.current_ma == [12340, 560, -780]
    assert got.voltage_v == [230, 229, 231]
    assert got.power_w == 2800 and got.phase_w == [1300, 0, -1800]
    assert got.import_wh == 1234560 and got.export_wh == 7770


def test_sunspec_reader_without_marker_is_a_com_error():
    c = FakeClient()
    c.hr[1] = {a: 0 for a in range(0, 10)}
    site = Site()
    site.configure(["M7"])
    entry = Entry({"dev_id": "M7", "driver": "meter_sunspec", "id": 1},
                  registry.make({"dev_id": "M7", "driver": "meter_sunspec", "id": 1}, c), site.device("M7"))
    bus = Bus("tcp:x", [entry], site, {}, Clock())
    run(bus.cycle())
    assert entry.com_err and "SunSpec" in entry.last_error


# -- phase switching of Power Brain boxes (8113 bit 8, 8087) --------------------------------------------------

def phase_writes(c, unit):
    return [x[3][0] for x in c.log if x[0] == unit and x[1] == "w" and x[2] == 8087]


def test_phase_wish_reaches_8087_only_on_a_box_that_can_switch():
    bus, c, clock, site, sp = make_bus(n_boxes=2)
    c.hr[1][8113] = 0x100  # E1 may switch 1p/3p while plugged in; E2 does not say so
    sp["E1"] = (True, 10000, 1)
    sp["E2"] = (True, 10000, 1)
    run(bus.cycle())
    assert phase_writes(c, 1) == [1] and phase_writes(c, 2) == []
    e1, e2 = site.device("E1"), site.device("E2")
    assert e1.can_switch_phases is True and e1.phases == 3  # read back: the box has not switched yet
    assert e2.can_switch_phases is False and e2.phases is None
    clock.now += 1000
    run(bus.cycle())
    assert phase_writes(c, 1) == [1]  # the wish is written once, not every cycle
    c.hr[1][8087] = 1  # the box switched
    clock.now += 1000
    run(bus.cycle())
    assert e1.phases == 1 and bus.entries[1].driver.info()["phases"] == 1


def test_phase_switches_of_a_remote_box_are_at_least_the_local_interval_apart():
    from loadpilot.evse.state_machine import MIN_SWITCH_INTERVAL_MS, Config
    assert Config().min_switch_interval_ms == MIN_SWITCH_INTERVAL_MS  # one rule for the local and remote boxes
    bus, c, clock, site, sp = make_bus(n_boxes=1)
    c.hr[1][8113] = 0x100
    sp["E1"] = (True, 10000, 1)
    run(bus.cycle())
    c.hr[1][8087] = 1
    clock.now += 10000
    sp["E1"] = (True, 10000, 3)  # back to 3p at once: chatter
    run(bus.cycle())
    assert phase_writes(c, 1) == [1]
    clock.now = MIN_SWITCH_INTERVAL_MS - 1
    run(bus.cycle())
    assert phase_writes(c, 1) == [1]
    clock.now = MIN_SWITCH_INTERVAL_MS
    run(bus.cycle())
    assert phase_writes(c, 1) == [1, 0]  # the wish waited for the interval, then went out
    assert c.hr[1][8093] == 100  # current set-points were written meanwhile as usual


def test_a_phase_wish_alone_writes_no_current_and_a_refused_8087_stops_the_tries():
    bus, c, clock, site, sp = make_bus(n_boxes=1)
    c.hr[1][8113] = 0x100
    sp["E1"] = (None, 6000, 1)  # MQTT ctl phs alone (observation mode)
    run(bus.cycle())
    assert phase_writes(c, 1) == [1]
    assert [x for x in c.log if x[1] == "w" and x[2] == 8093] == []
    assert site.device("E1").status == 3  # the box keeps being read
    # a box that reports bit 8 but refuses the register: no com_err, no further tries on this contact
    bus2, c2, clock2, site2, sp2 = make_bus(n_boxes=1)
    c2.hr[1][8113] = 0x100
    real = c2.write_multiple

    async def refuse(addr, values, unit=None):
        if addr == 8087:
            raise ModbusError(2, 6)
        return await real(addr, values, unit)
    c2.write_multiple = refuse
    sp2["E1"] = (True, 10000, 1)
    run(bus2.cycle())
    assert bus2.entries[1].com_err is False and site2.device("E1").can_switch_phases is True
    run(bus2.cycle())
    assert site2.device("E1").can_switch_phases is False


def test_a_box_without_8113_is_driven_without_phase_switching():
    bus, c, clock, site, sp = make_bus(n_boxes=1)
    del c.hr[1][8113]
    sp["E1"] = (True, 10000, 1)
    run(bus.cycle())
    assert bus.entries[1].com_err is False and site.device("E1").status == 3
    assert c.hr[1][8093] == 100 and phase_writes(c, 1) == []


def test_a_switch_a_week_later_is_not_held_by_the_wrapping_ticks_clock():
    bus, c, clock, site, sp = make_bus(n_boxes=1)
    c.hr[1][8113] = 0x100
    sp["E1"] = (True, 10000, 1)
    run(bus.cycle())
    c.hr[1][8087] = 1
    for _ in range(7 * 24):  # polled for a week (an hour per step here): ticks_diff would have turned negative
        clock.now = (clock.now + 3600000) % (1 << 30)
        run(bus.cycle())
    sp["E1"] = (True, 10000, 3)
    run(bus.cycle())
    assert phase_writes(c, 1) == [1, 0]
# -- the TCP-to-RTU proxy's access to a bus ------------------------------------------------------------------

class FakeMasterClient(FakeClient):
    def __init__(self, port):
        FakeClient.__init__(self)
        self.master = ("master", port)
        self.closed = 0

    async def close(self):
        self.closed += 1


def test_the_proxy_gets_the_polled_buss_master_or_one_the_layer_opens_and_closes():
    from loadpilot.modbus import serial_settings
    opened = []

    def open_rtu(st):
        opened.append(st.text())
        return FakeMasterClient(st.port)

    site = Site()
    site.configure(["E2"])
    layer = DeviceLayer([box_dev("E2", 2)], site, {}, open_rtu, None, slave_ports=("COM3",))
    assert layer.rtu_master(serial_settings.parse("COM1,9600,8,n,1")) == ("master", "COM1")  # the polled bus's
    assert layer.rtu_master(serial_settings.parse("COM2,19200,8,e,1")) == ("master", "COM2")  # opened for it
    assert layer.rtu_master(serial_settings.parse("COM2,19200,8,e,1")) == ("master", "COM2")  # once
    assert len(opened) == 2 and opened[1] == "COM2,19200,8,e,1"
    with pytest.raises(ValueError) as e:
        layer.rtu_master(serial_settings.parse("COM3,9600,8,n,1"))
    assert "slave port" in str(e.value)
    extra = layer.extra["rtu:COM2"]
    run(layer.close())
    assert layer.buses[0].client.closed == 1 and extra.closed == 1 and layer.extra == {}


def test_tcp_hosts_past_the_socket_budget_connect_per_poll_one_at_a_time():
    # tcp_own=1 (config/schema.py socket_plan): the first host keeps its connection, the other three share
    # one socket: each holds it for one whole cycle (every request of it), then closes it and passes it on
    clients = []
    held = []  # hosts holding a connection at each request

    class Host(FakeClient):
        def __init__(self, host):
            FakeClient.__init__(self)
            self.host = host
            self.open = False

        async def read_holding(self, addr, count, unit=None):
            self.open = True
            held.append(sorted(c.host for c in clients if c.open))
            await asyncio.sleep(0)  # let the other buses run in between
            return await FakeClient.read_holding(self, addr, count, unit)

        async def close(self):
            self.open = False
            self.closed += 1

    def open_tcp(host, port):
        c = Host(host)
        powerbrain(c, 1)
        clients.append(c)
        return c

    devs = [box_dev("E%d" % i, 1, address_="10.0.0.%d:502" % i) for i in range(2, 6)]
    site = Site()
    site.configure([d["dev_id"] for d in devs])
    layer = DeviceLayer(devs, site, {}, None, open_tcp, tcp_own=1)
    assert [b.view()["per_poll"] for b in layer.buses] == [False, True, True, True]

    async def cycles():
        for _ in range(3):
            await asyncio.gather(*[b.cycle() for b in layer.buses])

    run(cycles())
    assert all(not site.device(d["dev_id"]).com_err for d in devs)
    assert [c.closed for c in clients] == [0, 3, 3, 3]
    # never two of the per-poll hosts at once; the connected host is there throughout
    assert all(len([h for h in hosts if h != "10.0.0.2"]) <= 1 for hosts in held), held
    assert any(len(hosts) == 2 for hosts in held)  # the buses did run side by side
