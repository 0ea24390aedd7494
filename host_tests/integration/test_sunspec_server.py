"""The SunSpec server on the MicroPython binary, scanned and written by pysunspec2 and pymodbus over TCP."""
import os
import socket
import struct
import time

import pytest
import sunspec2.device as sdevice
from pymodbus.client import ModbusTcpClient
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from firmware_proc import ROOT, Firmware, free_port, wait_for
from modbus_peers import request

pytestmark = pytest.mark.mp

MODELS = os.path.join(ROOT, "tools", "sunspec_models")
DEVICES = [
    # the boxes on the network have nothing listening on loopback port 9: they stay offline (never a real host)
    {"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "publish_modbus": True},
    {"dev_id": "E2", "driver": "evse_powerbrain", "address": "COM1,19200,8,n,1", "id": 2, "publish_modbus": True},
    {"dev_id": "E3", "driver": "evse_omcci", "address": "127.0.0.1:9", "publish_modbus": True},
    {"dev_id": "E4", "driver": "evse_omcci", "address": "127.0.0.1:9"},  # not published
    {"dev_id": "M1", "driver": "http_input", "role": 3, "publish_modbus": True},  # readings pushed by the test
    {"dev_id": "M2", "driver": "http_input", "role": 2, "publish_modbus": True},
    {"dev_id": "M3", "driver": "http_input", "role": 5, "publish_modbus": True},
]


@pytest.fixture(autouse=True)
def model_path():
    old = sdevice.get_model_defs_path()
    sdevice.set_model_defs_path([MODELS] + list(old))
    yield
    sdevice.set_model_defs_path(old)


def boot(tmp_path, port=None, **extra):
    port = port or free_port()
    cfg = {"modbus_tcp_port": port, "commit_delay_s": 1, "title": "Carport", "devices": DEVICES,
           "cm_vars": [{"name": "surplus", "expr": "M1.power_w"}, {"name": "price"}]}
    cfg.update(extra)
    fw = Firmware(fs_dir=str(tmp_path), config=cfg, env={"LOADPILOT_SERIAL": "LP-TEST-7"})
    fw.port = port
    fw.start()
    fw.wait_port(port)
    return fw


def push_site(fw):
    """Readings as the device layer would put them into the Site; the totals follow from the manager's cycle."""
    r = lambda cur, wh: {"current_ma": cur, "voltage_v": [230, 231, 229], "import_wh": wh, "export_wh": 10}
    fw.ctl("site", readings={
        "E2": dict(r([16000, 16000, 16000], 2000), status=3),
        "M1": r([20000, 18000, 17000], 555000),
        "M2": r([-4000, -4000, -4000], 10),
        "M3": dict(r([-5000, -5000, -5000], 3000), soc_pct=81),
    })
    time.sleep(3.3)  # the next manager cycle (2 s) computes the totals, the images refresh once a second


def scan(port, unit):
    d = SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=port, timeout=5)
    d.scan()
    return d


def raw(port, unit, model, off):
    """One register as int16, over its own pymodbus connection (pysunspec2 stays out of it)."""
    with ModbusTcpClient("127.0.0.1", port=port) as c:
        v = c.read_holding_registers(model.model_addr + off, count=1, device_id=unit).registers[0]
    return v - 0x10000 if v & 0x8000 else v


def test_pysunspec2_scans_both_units(tmp_path):
    with boot(tmp_path) as fw:
        push_site(fw)
        d = scan(fw.port, 1)
        try:
            c = d.models[1][0]
            assert (c.Mn.value, c.Md.value, c.SN.value, c.DA.value) == ("LoadPilot", "Carport", "LP-TEST-7", 1)
            assert [m.model_addr for m in d.models[213]] == [40070, 40196, 40322, 40448, 40574, 40700, 40826]
            assert (d.models[60000][0].model_addr, d.models[60001][0].model_addr,
                    d.models[60002][0].model_addr) == (40952, 40970, 41004)
            t = d.models[213]  # the seven totals, from the manager's cycle
            grid = t[0]  # the grid meter M1
            assert grid.AphA.value == 20.0 and grid.TotWhImp.value == 555000.0
            assert t[1].A.value == 48.0  # consumers: no consumption meter, the wallboxes (E2 charges at 16 A)
            assert t[2].A.value == 12.0 and t[2].W.value > 0  # generators: M2, counted positive
            assert t[3].W.value == 0.0  # the house imports: no PV surplus
            assert t[4].A.value == 48.0  # used wallbox power
            assert t[5].A.value > 0  # what the wallboxes may draw
            assert t[6].A.value == 36.0  # fault: E3 and E4 are unreachable, each counted at 6 A on 3 phases
            assert all(m.A.value is not None for m in t)
            p = d.models[60000][0]
            assert (p.MaxTotCur.value, p.LbActive.value, p.MaxTotCurPct.value) == (32000.0, 1.0, 100.0)
            assert [g.Name.value for g in d.models[60002][0].var] == ["surplus", "price"]
        finally:
            d.close()

        d = scan(fw.port, 2)
        d.close()
        p = fw.port
        evses = d.models[113]
        assert [raw(p, 2, m, 63) for m in evses] == [1, 2, 3]
        # E1 is the local charge point and reports its own state (no car on the virtual pilot: waiting);
        # E2 was pushed as charging; E3 never answered: error/offline
        assert [raw(p, 2, m, 62) for m in evses] == [1, 3, 5]
        assert evses[0].A.value == 0.0 and evses[1].A.value == 48.0 and evses[1].WH.value == 2000.0
        meters = d.models[213]
        assert [(raw(p, 2, m, 126), raw(p, 2, m, 127)) for m in meters] == [(3, -1), (2, -2), (5, -3)]
        assert meters[0].AphB.value == 18.0
        st = d.models[124][0]
        assert st.ChaState.value == 81 and raw(p, 2, st, 26) == -3


def test_writes_take_effect_and_only_60000_survives_a_reboot(tmp_path):
    with boot(tmp_path) as fw:
        d = scan(fw.port, 1)
        try:
            p = d.models[60000][0]
            p.MaxTotCur.value = 40000.0
            p.Reserve.value = 2000.0
            p.MaxTotCurPct.value = 60.0
            p.write()
            flags = d.models[60001][0]
            flags.Flag7.value = 1
            flags.write()
            var = d.models[60002][0].var[1]
            var.Val.value = 0.29
            var.write()
        finally:
            d.close()
        with ModbusTcpClient("127.0.0.1", port=fw.port) as c:
            c.write_registers(40952 + 12, list(struct.unpack(">HH", struct.pack(">f", 0.0))), device_id=1)
        v = fw.ctl("config_get")["values"]
        assert (v["max_total_current"], v["reserve_current"], v["lb_enabled"]) == (40000, 2000, False)
        time.sleep(2.5)  # commit delay of 1 s, flusher polls once a second
        assert fw.ctl("config_get")["dirty"] is False
        port = fw.port

    with boot(tmp_path, port) as fw:
        d = scan(fw.port, 1)
        try:
            p = d.models[60000][0]
            assert (p.MaxTotCur.value, p.Reserve.value, p.LbActive.value) == (40000.0, 2000.0, 0.0)
            assert p.MaxTotCurPct.value == 100.0  # the percent is volatile
            assert d.models[60001][0].Flag7.value == 0
            assert d.models[60002][0].var[1].Val.value is None
        finally:
            d.close()


def f32(x):
    return list(struct.unpack(">HH", struct.pack(">f", x)))


def exc(result):
    return getattr(result, "exception_code", None) if result.isError() else None


@pytest.mark.parametrize("addr, values", [
    (40954, f32(float("nan"))),
    (40954, f32(float("inf"))),
    (40956, f32(-2000.0)),      # a negative current
    (40968, f32(101.0)),        # percent over 100
    (40970 + 2, [2]),           # a flag of 2
    (40954, [0x4700]),          # half of a float pair
    (40954, f32(5e6)),          # 5000 A: out of the schema's range
])
def test_bad_writes_get_03_and_change_nothing(tmp_path, addr, values):
    with boot(tmp_path) as fw, ModbusTcpClient("127.0.0.1", port=fw.port) as c:
        time.sleep(1.2)
        before = c.read_holding_registers(40952, count=52, device_id=1).registers
        r = c.write_registers(addr, values, device_id=1) if len(values) > 1 else \
            c.write_register(addr, values[0], device_id=1)
        assert exc(r) == 3
        assert c.read_holding_registers(40952, count=52, device_id=1).registers == before
        assert fw.ctl("config_get")["dirty"] is False


def test_addressing_errors(tmp_path):
    with boot(tmp_path) as fw, ModbusTcpClient("127.0.0.1", port=fw.port, timeout=3) as c:
        assert exc(c.write_register(40070 + 4, 1, device_id=1)) == 2   # read-only measured value
        assert exc(c.write_register(40953, 99, device_id=1)) == 2      # model length
        assert exc(c.write_register(40002 + 10, 1, device_id=2)) == 2  # ID+1 is read-only
        end = 41006 + 44
        assert c.read_holding_registers(end, count=2, device_id=1).registers == [0xFFFF, 0]
        assert exc(c.read_holding_registers(end, count=3, device_id=1)) == 2  # past the end marker
        for addr in (0, 50000):
            t = time.monotonic()
            assert exc(c.read_holding_registers(addr, count=2, device_id=1)) == 2
            assert time.monotonic() - t < 1.0  # an answer, not a timeout
        assert c.read_input_registers(40000, count=2, device_id=1).registers == [0x5375, 0x6E53]


def test_function_codes_other_than_3_4_6_16_get_01(tmp_path):
    with boot(tmp_path) as fw:
        s = socket.create_connection(("127.0.0.1", fw.port), timeout=3)
        try:
            assert request(s, 1, bytes([1, 0x9C, 0x40, 0, 8])) == bytes([0x81, 1])  # read coils
            assert request(s, 1, bytes([3, 0x9C, 0x40, 0, 126])) == bytes([0x83, 3])  # 126 registers
            assert request(s, 1, bytes([0x2B, 0x0E, 1, 0])) == bytes([0xAB, 1])  # no device identification
        finally:
            s.close()


def test_pysunspec2_scans_and_writes_over_rtu(tmp_path):
    from sunspec2.modbus.client import SunSpecModbusClientDeviceRTU

    from ptybus import PtyPair
    bus = PtyPair()
    fw = Firmware(fs_dir=str(tmp_path), env={"LOADPILOT_UART_RS485_1": bus.fw},
                  config={"modbus_tcp_port": 0, "pb_tcp_port": 0, "modbus_rtu_port": "COM1,19200,8,n,1",
                          "devices": DEVICES, "cm_vars": [{"name": "surplus"}]})
    try:
        fw.start()
        push_site(fw)
        d = SunSpecModbusClientDeviceRTU(slave_id=1, name=bus.peer, baudrate=19200, parity="N", timeout=2)
        try:
            d.scan()
            assert [m.model_addr for m in d.models[213]] == [40070, 40196, 40322, 40448, 40574, 40700, 40826]
            assert d.models[1][0].Mn.value == "LoadPilot"
            p = d.models[60000][0]
            p.MaxTotCur.value = 28000.0
            p.write()
        finally:
            d.close()
        assert fw.ctl("config_get", key="max_total_current") == 28000
        d = SunSpecModbusClientDeviceRTU(slave_id=2, name=bus.peer, baudrate=19200, parity="N", timeout=2)
        try:
            d.scan()
            assert len(d.models[113]) == 3 and len(d.models[213]) == 3 and len(d.models[124]) == 1
            assert d.models[213][0].AphA.value == 20.0
        finally:
            d.close()
        assert "rtu_rs485_1" in [t["name"] for t in fw.status()["tasks"]]
    finally:
        fw.stop()
        bus.close()


def test_images_are_rebuilt_when_devices_change(tmp_path):
    with boot(tmp_path) as fw:
        d = scan(fw.port, 2)
        d.close()
        assert len(d.models[113]) == 3
        devices = [dict(x) for x in DEVICES]
        devices[3]["publish_modbus"] = True  # E4 is now published too
        devices = devices[:4] + [dict(dev_id="M4", driver="http_input", role=1, publish_modbus=True)] + devices[4:]
        fw.ctl("config_set", key="devices", value=devices)
        # the device list is applied after 0.5 s of quiet, then the refresh task rebuilds within a second
        assert wait_for(lambda: "images rebuilt for the new configuration" in fw.read_output(), timeout=10)
        d = scan(fw.port, 2)
        d.close()
        assert len(d.models[113]) == 4 and len(d.models[213]) == 4
        assert raw(fw.port, 2, d.models[213][0], 127) == -4  # configuration order: M4 comes first now
