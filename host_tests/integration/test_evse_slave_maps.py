"""The local charge point as a Modbus slave on the MicroPython binary: pymodbus drives the Power Brain map
the way evcc's driver does, and the OMCCI map the way a home energy manager does."""
import time

import pytest
from pymodbus.client import ModbusTcpClient

from firmware_proc import Firmware, free_port, free_ports, wait_for

pytestmark = pytest.mark.mp


def boot(tmp_path, **cfg):
    # a box steered by an outside master (evcc, a home energy manager) runs in observation mode: its own
    # Charging Manager does not compete with the master (seeds/mqtt-api.md, docs/evse.md)
    config = {"modbus_tcp_port": free_port(), "commit_delay_s": 1, "lb_enabled": False}
    config.update(cfg)
    base = config.setdefault("pb_tcp_port", free_ports(3))
    om = config.setdefault("omcci_tcp_port", free_port())
    fw = Firmware(fs_dir=str(tmp_path), config=config).start()
    fw.pb, fw.om = base, om
    for p in (base, base + 1, base + 2, om):
        fw.wait_port(p)
    return fw


def exc(r):
    return r.exception_code if r.isError() else None


def limit_ma(fw):
    """The current the charge point may offer now (the PWM duty carries it with a rounding of a few mA)."""
    return fw.ctl("evse")["limit"]["ma"]


def charge(fw):
    fw.ctl("set_adc", name="cp", mv=9000)
    assert wait_for(lambda: fw.ctl("evse")["cp"] == "B")
    fw.ctl("set_adc", name="cp", mv=6000)


def test_evcc_style_control_of_the_power_brain_map(tmp_path):
    with boot(tmp_path) as fw, ModbusTcpClient("127.0.0.1", port=fw.pb) as c:
        ident = c.read_holding_registers(8000, count=2, device_id=1).registers
        assert ident == [0xCF05, 0]
        assert c.read_holding_registers(8092, count=1, device_id=1).registers == [0]  # A: no car
        charge(fw)
        assert wait_for(lambda: c.read_holding_registers(8092, count=1, device_id=1).registers == [2])  # C
        assert c.write_register(8093, 100, device_id=1).isError() is False  # 10 A, as amps x 10
        assert wait_for(lambda: limit_ma(fw) == 10000)
        assert wait_for(lambda: c.read_holding_registers(8093, count=3, device_id=1).registers == [100, 1, 100])
        # 8095 reads back what 8093 set, in 0.1 A: 11 A is a duty whose exact current is 10.998 A
        c.write_register(8093, 110, device_id=1)
        assert wait_for(lambda: c.read_holding_registers(8093, count=3, device_id=1).registers == [110, 1, 110])
        c.write_register(8093, 100, device_id=1)
        assert wait_for(lambda: limit_ma(fw) == 10000)
        assert fw.ctl("evse")["limit"]["reason"] == "modbus"
        c.write_register(8094, 0, device_id=1)  # disable: the car is told no power, then the contactor opens
        assert wait_for(lambda: fw.ctl("evse")["offered_ma"] == 0)
        assert exc(c.write_register(8093, 50, device_id=1)) == 3  # 5 A is below the minimum
        assert exc(c.write_register(8092, 1, device_id=1)) == 2   # read-only
        assert c.read_holding_registers(8093, count=2, device_id=1).registers == [100, 0]
        c.write_register(8094, 1, device_id=1)
        assert wait_for(lambda: limit_ma(fw) == 10000)
        c.write_register(8086, 5, device_id=1)  # wake the car: CP off for 5 s
        assert wait_for(lambda: c.read_holding_registers(8086, count=1, device_id=1).registers[0] in (4, 5))
        assert fw.ctl("evse")["disconnect_cp_s"] > 0
        c.write_register(8087, 1, device_id=1)  # 1-phase; phase switching waits for an unplug by default
        assert wait_for(lambda: fw.ctl("evse")["pending_phases"] == 1)
        # volatile registers never touch flash
        assert fw.ctl("config_get")["dirty"] is True  # only the boot's restart counter is pending
        time.sleep(2.2)
        saves = fw.ctl("config_get")["saves"]
        for amps in (60, 70, 80, 90):
            c.write_register(8093, amps, device_id=1)
        time.sleep(2.2)
        assert fw.ctl("config_get")["saves"] == saves


def test_persistent_registers_survive_a_restart_and_s0_units_answer(tmp_path):
    with boot(tmp_path) as fw:
        with ModbusTcpClient("127.0.0.1", port=fw.pb) as c:
            c.write_registers(8083, [0, 120, 80], device_id=1)  # fail-safe after 120 s at 8 A
            assert c.read_holding_registers(8083, count=3, device_id=1).registers == [0, 120, 80]
        with ModbusTcpClient("127.0.0.1", port=fw.pb + 1) as m:
            assert m.read_holding_registers(8040, count=1, device_id=2).registers == [2]
            m.write_registers(8042, [0, 800], device_id=2)
            m.write_registers(8058, [0, 0, 0, 54321], device_id=2)
            assert m.read_holding_registers(8058, count=4, device_id=2).registers == [0, 0, 0, 54321]
            assert exc(m.read_holding_registers(8040, count=1, device_id=1)) == 0x0B  # unit 1 is on 4701
        time.sleep(2.5)
        restarts = fw.ctl("config_get", key="count_restart")
        pb, om = fw.pb, fw.om
    with boot(tmp_path, pb_tcp_port=pb, omcci_tcp_port=om) as fw:
        with ModbusTcpClient("127.0.0.1", port=fw.pb) as c:
            assert c.read_holding_registers(8083, count=3, device_id=1).registers == [0, 120, 80]
            assert c.read_holding_registers(8120, count=2, device_id=1).registers == [0, restarts + 1]
        with ModbusTcpClient("127.0.0.1", port=fw.pb + 1) as m:
            assert m.read_holding_registers(8042, count=2, device_id=2).registers == [0, 800]
            assert m.read_holding_registers(8058, count=4, device_id=2).registers == [0, 0, 0, 54321]


def test_fail_safe_after_master_silence_and_recovery(tmp_path):
    with boot(tmp_path, fail_safe_duration=2, fail_safe_current=8000) as fw:
        charge(fw)
        with ModbusTcpClient("127.0.0.1", port=fw.pb) as c:
            c.write_register(8093, 160, device_id=1)
            assert wait_for(lambda: limit_ma(fw) == 16000)
            t_last = time.monotonic()
        assert wait_for(lambda: limit_ma(fw) == 8000, timeout=6)
        silent_s = time.monotonic() - t_last
        assert 1.8 <= silent_s <= 4.0, silent_s  # the 2 s fail-safe window plus at most a refresh or two
        assert fw.ctl("evse_control")["pb_fail_safe"] is True
        with ModbusTcpClient("127.0.0.1", port=fw.pb) as c:
            c.read_holding_registers(8092, count=1, device_id=1)  # the master is back: its limit applies
        assert wait_for(lambda: limit_ma(fw) == 16000)
        assert "Power Brain master silent, fail-safe: limit 8000 mA" in fw.read_output()


def test_a_box_nobody_controls_never_drops_to_the_fail_safe(tmp_path):
    with boot(tmp_path, fail_safe_duration=1, fail_safe_current=0) as fw:
        charge(fw)
        time.sleep(2.0)
        assert limit_ma(fw) > 6000


def test_home_energy_manager_drives_omcci(tmp_path):
    with boot(tmp_path) as fw:
        with ModbusTcpClient("127.0.0.1", port=fw.om) as c:
            assert c.read_holding_registers(141, count=1, device_id=1).registers == [0xEBEE]
            charge(fw)
            assert wait_for(lambda: c.read_holding_registers(122, count=2, device_id=1).registers == [3, 0x0C])
            c.write_registers(131, [6, 2], device_id=1)  # safe current 6 A, 2 s timeout
            c.write_register(1000, 13, device_id=1)      # HEMS limit 13 A
            assert wait_for(lambda: limit_ma(fw) == 13000)
            assert c.read_holding_registers(1000, count=1, device_id=1).registers == [13]
            assert exc(c.write_register(1000, 81, device_id=1)) == 3
            assert exc(c.write_register(610, 10, device_id=1)) == 2  # the DLM master's own limit: read-only
            t_last = time.monotonic()
        assert wait_for(lambda: limit_ma(fw) == 6000, timeout=6)  # silent energy manager: safe current
        assert time.monotonic() - t_last >= 1.8
        with ModbusTcpClient("127.0.0.1", port=fw.om) as c:
            assert c.read_holding_registers(131, count=2, device_id=1).registers == [6, 2]
        assert wait_for(lambda: limit_ma(fw) == 13000)


def test_power_brain_map_over_rtu(tmp_path):
    from pymodbus.client import ModbusSerialClient

    from ptybus import PtyPair
    bus = PtyPair()
    fw = Firmware(fs_dir=str(tmp_path), env={"LOADPILOT_UART_RS485_1": bus.fw},
                  config={"modbus_tcp_port": 0, "pb_tcp_port": 0, "slave_rtu_port": "COM1,19200,8,n,1"})
    try:
        fw.start()
        charge(fw)
        c = ModbusSerialClient(port=bus.peer, baudrate=19200, timeout=1, retries=2)
        assert c.connect()
        try:
            assert wait_for(lambda: c.read_holding_registers(8092, count=1, device_id=1).registers == [2])
            assert c.write_register(8093, 120, device_id=1).isError() is False
            assert wait_for(lambda: limit_ma(fw) == 12000)
            assert c.read_holding_registers(8040, count=1, device_id=2).registers == [2]  # S0 meter 1
            assert exc(c.write_register(8093, 700, device_id=1)) == 3
        finally:
            c.close()
    finally:
        fw.stop()
        bus.close()


def test_the_local_charge_point_is_a_site_device(tmp_path):
    devices = [{"dev_id": "E1", "driver": "evse_local", "address": "evse", "publish_modbus": True}]
    with boot(tmp_path, devices=devices) as fw:
        status = lambda: {d["dev_id"]: d for d in fw.status()["devices"]}["E1"]
        assert wait_for(lambda: status()["state"] == 1)  # waiting
        charge(fw)
        assert wait_for(lambda: status()["state"] == 3)  # charging
        for _ in range(20):  # S0 meter 1 is the attached meter: 20 pulses at 1000/kWh = 20 Wh
            fw.ctl("set_input", name="s0_1", value=1)
            time.sleep(0.03)
            fw.ctl("set_input", name="s0_1", value=0)
            time.sleep(0.03)
        assert wait_for(lambda: status()["import_wh"] == 20 and status()["power_w"] > 0, timeout=5)


def regs_text(regs):
    return b"".join(bytes([r >> 8, r & 0xFF]) for r in regs).rstrip(b"\0")


def text_regs(text, n):
    raw = text.encode().ljust(2 * n, b"\0")
    return [(raw[2 * i] << 8) | raw[2 * i + 1] for i in range(n)]


def test_omcci_version_session_user_id(tmp_path):
    with boot(tmp_path) as fw, ModbusTcpClient("127.0.0.1", port=fw.om) as c:
        version = regs_text(c.read_holding_registers(100, count=2, device_id=1).registers)
        assert len(version) == 4 and all(0x20 < b < 0x7F for b in version), version  # e.g. "0.01"
        assert version[1:2] == b"."
        # the user ID as the seed lists it: five 2-register writes, bytes 0..3 first
        uid = "ABCDEFGHIJKLMNOPQRST"
        for i in range(5):
            assert not c.write_registers(1110 + 2 * i, text_regs(uid[4 * i:4 * i + 4], 2), device_id=1).isError()
        assert regs_text(c.read_holding_registers(720, count=10, device_id=1).registers) == uid.encode()
        c.write_registers(1110, text_regs("RFID-42", 10), device_id=1)  # or in one write
        assert regs_text(c.read_holding_registers(720, count=10, device_id=1).registers) == b"RFID-42"
        c.write_registers(1110, text_regs("XY", 2), device_id=1)  # a new, shorter ID piece by piece
        c.write_registers(1112, text_regs("Z", 2), device_id=1)
        assert regs_text(c.read_holding_registers(720, count=10, device_id=1).registers) == b"XY\0\0Z"
        assert exc(c.write_register(1112, 0x4142, device_id=1)) == 3  # half a piece
        assert exc(c.write_registers(1111, [0, 0], device_id=1)) == 3  # not at a piece's start
        assert exc(c.write_registers(1110, [0xFFFE, 0xFFFF], device_id=1)) == 3  # not text
        assert regs_text(c.read_holding_registers(720, count=10, device_id=1).registers) == b"XY\0\0Z"
        # a session: 718 counts the seconds the contactor is closed, 716 the Wh of S0 meter 1 since plug-in
        for _ in range(2):  # energy before the plug-in is not the session's
            fw.ctl("set_input", name="s0_1", value=1)
            fw.ctl("set_input", name="s0_1", value=0)
            time.sleep(0.03)
        assert wait_for(lambda: fw.ctl("evse")["s0"][0]["energy_wh"] == 2)
        charge(fw)
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1)
        assert wait_for(lambda: c.read_holding_registers(718, count=2, device_id=1).registers[1] >= 2, timeout=8)
        for _ in range(5):
            fw.ctl("set_input", name="s0_1", value=1)
            fw.ctl("set_input", name="s0_1", value=0)
            time.sleep(0.03)
        assert wait_for(lambda: c.read_holding_registers(716, count=2, device_id=1).registers == [0, 5])
        fw.ctl("set_adc", name="cp", mv=9000)  # the car stops drawing (B): the contactor opens
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 0)
        time.sleep(0.5)
        held = c.read_holding_registers(716, count=4, device_id=1).registers
        time.sleep(1.5)
        assert c.read_holding_registers(716, count=4, device_id=1).registers == held  # holds after charging
        assert held[3] >= 2
        fw.ctl("set_adc", name="cp", mv=12000)  # unplugged, and a new car: a new session
        assert wait_for(lambda: fw.ctl("evse")["cp"] == "A")
        time.sleep(0.5)  # unplugged for a moment (the map refreshes five times a second)
        fw.ctl("set_adc", name="cp", mv=9000)
        assert wait_for(lambda: c.read_holding_registers(716, count=4, device_id=1).registers == [0, 0, 0, 0])


def test_omcci_operator_limit_caps_the_charging_manager(tmp_path):
    devices = [{"dev_id": "E1", "driver": "evse_local", "address": "evse", "max_charging_cur": 16000}]
    # here the box's own Charging Manager runs (load management on) under the operator's limit
    with boot(tmp_path, devices=devices, lb_enabled=True) as fw, ModbusTcpClient("127.0.0.1", port=fw.om) as c:
        e1 = lambda: {d["dev_id"]: d for d in fw.status()["devices"]}["E1"]  # noqa: E731
        charge(fw)
        assert wait_for(lambda: e1().get("alloc_ma") == 16000, timeout=20)
        assert c.read_holding_registers(613, count=3, device_id=1).registers == [0, 0, 0]  # 0 = none
        assert not c.write_registers(613, [10, 10, 10], device_id=1).isError()  # 10 A per phase, all wallboxes
        assert c.read_holding_registers(613, count=3, device_id=1).registers == [10, 10, 10]
        assert wait_for(lambda: e1().get("alloc_ma") == 10000 and e1().get("reason") == "operator", timeout=10)
        assert wait_for(lambda: limit_ma(fw) == 10000)
        assert exc(c.write_register(614, 1001, device_id=1)) == 3  # above 1000 A: refused, nothing changed
        assert c.read_holding_registers(613, count=3, device_id=1).registers == [10, 10, 10]
        c.write_register(615, 8, device_id=1)  # one phase alone
        assert wait_for(lambda: e1().get("alloc_ma") == 8000, timeout=10)
        assert fw.ctl("config_get", key="dlm_operator_limit") == [10000, 10000, 8000]  # a setting, persisted
        time.sleep(2.5)  # commit_delay_s 1
        pb, om = fw.pb, fw.om
    with boot(tmp_path, devices=devices, pb_tcp_port=pb, omcci_tcp_port=om) as fw, \
            ModbusTcpClient("127.0.0.1", port=fw.om) as c:
        assert c.read_holding_registers(613, count=3, device_id=1).registers == [10, 10, 8]
