"""Features that are off cost nothing (issue 13): on the MicroPython binary, the default boot imports no driver,
no Modbus client, no slave map and no MQTT topics code; switching a feature on imports it, and it works."""
import socket
import struct
import time

import pytest

import firmware_proc
from modbus_peers import read_pdu, request

pytestmark = pytest.mark.mp

OFF_BY_DEFAULT = ("loadpilot.registers.evse_slave", "loadpilot.registers.powerbrain", "loadpilot.registers.omcci",
                  "loadpilot.registers.table", "loadpilot.devices.registry", "loadpilot.devices.bus",
                  "loadpilot.devices.address", "loadpilot.modbus.serial_settings", "loadpilot.devices.evse_powerbrain",
                  "loadpilot.devices.evse_omcci", "loadpilot.devices.meter", "loadpilot.devices.meter_sunspec",
                  "loadpilot.devices.meter_tables", "loadpilot.modbus.rtu_master", "loadpilot.modbus.tcp_client",
                  "loadpilot.mqtt.service", "loadpilot.mqtt.client", "loadpilot.api.dev_info")


SLAVE_MAPS = ("loadpilot.registers.evse_slave", "loadpilot.registers.powerbrain", "loadpilot.registers.omcci",
              "loadpilot.registers.table")


@pytest.mark.parametrize("pb_on", [False, True], ids=["pb_tcp_port_0", "documented_defaults"])
def test_the_default_boot_imports_no_switched_off_feature(pb_on):
    # documented defaults: SunSpec TCP and the Power Brain map on (their ports moved to free ones), nothing else
    sunspec, pb = firmware_proc.free_port(), firmware_proc.free_port()
    with firmware_proc.Firmware(config={"modbus_tcp_port": sunspec, "pb_tcp_port": pb if pb_on else 0}) as fw:
        fw.wait_port(sunspec)
        mods = fw.ctl("modules")
        assert "loadpilot.registers.sunspec_service" in mods and "loadpilot.devices.evse_local" in mods, mods
        off = [m for m in OFF_BY_DEFAULT if not (pb_on and m in SLAVE_MAPS)]
        loaded = [m for m in off if m in mods]
        assert loaded == [], loaded
        assert all(m in mods for m in SLAVE_MAPS) == pb_on, mods
        assert fw.status()["devices"][0]["dev_id"] == "E1"  # the local box still reaches the Site


def test_a_switched_on_feature_is_imported_and_works():
    sunspec, pb = firmware_proc.free_port(), firmware_proc.free_port()
    cfg = {"modbus_tcp_port": sunspec, "pb_tcp_port": pb, "lb_enabled": False,
           # the MQTT API on a broker that is not there: the topics code is loaded, and retries in the background
           "mqtt_url": "mqtt://127.0.0.1:%d" % firmware_proc.free_port(), "mqtt_api_url": "mqtt",
           # a Modbus TCP device: the box's own SunSpec server, whose grid model shows the pushed M2
           "devices": [{"dev_id": "M1", "driver": "meter_sunspec", "address": "127.0.0.1:%d" % sunspec, "id": 1,
                        "role": 0},
                       {"dev_id": "M2", "driver": "http_input", "address": "", "role": 3}]}
    with firmware_proc.Firmware(config=cfg) as fw:
        fw.wait_port(pb)
        s = socket.create_connection(("127.0.0.1", pb), timeout=2)
        try:
            pdu = request(s, 1, read_pdu(3, 8000, 2))  # vendor id of the Power Brain map
            assert struct.unpack(">I", pdu[2:6])[0] == 0xCF050000, pdu
        finally:
            s.close()
        m1 = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            fw.ctl("site", readings={"M2": {"import_wh": 777000, "power_w": 1000}})
            m1 = {d["dev_id"]: d for d in fw.status()["device_comm"]}.get("M1", {})
            if m1.get("import_wh") == 777000:
                break
            time.sleep(0.3)
        assert m1.get("com_err") is False and m1.get("import_wh") == 777000, m1
        mods = fw.ctl("modules")
        for m in ("loadpilot.registers.evse_slave", "loadpilot.registers.powerbrain", "loadpilot.modbus.tcp_client",
                  "loadpilot.devices.meter_sunspec", "loadpilot.devices.bus", "loadpilot.mqtt.service",
                  "loadpilot.mqtt.client"):
            assert m in mods, (m, mods)
        for m in ("loadpilot.modbus.rtu_master", "loadpilot.devices.evse_omcci", "loadpilot.devices.meter_tables",
                  "loadpilot.api.json_in"):  # no ctl or set/ message came: the JSON parser is not needed yet
            assert m not in mods, (m, mods)
