"""The Modbus TCP -> RTU proxy end to end: pymodbus TCP client -> our TCP server -> proxy -> our RTU master
-> pty bus -> pymodbus RTU server, all firmware parts on the real MicroPython binary."""
import logging
import os
import threading
import time

import pytest
from pymodbus.client import ModbusTcpClient

import firmware_proc
import ptybus

pytestmark = pytest.mark.mp
HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_MS = 300
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@pytest.fixture(scope="module")
def tcp():
    bus = ptybus.PtyPair()
    server = ptybus.start_python("pymodbus_rtu_server.py", bus.peer, "1,2", 9600)
    port = firmware_proc.free_port()
    fw = None
    try:
        ptybus.wait_line(server, "server on")
        fw = ptybus.start_micropython(open(os.path.join(HERE, "mp_rtu_proxy.py")).read(), bus.fw,
                                      args={"port": port, "timeout_ms": TIMEOUT_MS})
        ptybus.wait_line(fw, "proxy ready")
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
        assert client.connect()
        yield client
        client.close()
    finally:
        if fw:
            out = ptybus.stop(fw)
            if "Traceback" in out:
                print(out)
        ptybus.stop(server)
        bus.close()


def test_reads_and_writes_reach_the_rtu_slaves(tcp):
    assert tcp.read_holding_registers(0, count=4, device_id=1).registers == [1000, 1001, 1002, 1003]
    assert tcp.read_input_registers(5, count=2, device_id=2).registers == [2006, 2007]
    assert tcp.read_holding_registers(50, count=125, device_id=2).registers == [2050 + i for i in range(125)]
    assert not tcp.write_register(7, 777, device_id=1).isError()
    assert not tcp.write_registers(40, [4, 5, 6], device_id=2).isError()
    assert tcp.read_holding_registers(6, count=3, device_id=1).registers == [1006, 777, 1008]
    assert tcp.read_holding_registers(40, count=3, device_id=2).registers == [4, 5, 6]


def test_the_slaves_exceptions_come_back_unchanged(tcp):
    r = tcp.read_holding_registers(5000, count=2, device_id=1)
    assert r.isError() and r.exception_code == 2


def test_a_silent_rtu_unit_gives_gateway_target_failed_after_its_timeout(tcp):
    t0 = time.monotonic()
    r = tcp.read_holding_registers(0, count=1, device_id=5)
    elapsed_ms = (time.monotonic() - t0) * 1000
    assert r.isError() and r.exception_code == 0x0B
    assert elapsed_ms >= TIMEOUT_MS
    # and the bus is fine afterwards
    assert tcp.read_holding_registers(0, count=1, device_id=2).registers == [2000]


def test_local_and_unknown_units_are_not_forwarded(tcp):
    assert tcp.read_holding_registers(0, count=3, device_id=100).registers == [100, 101, 102]
    r = tcp.read_holding_registers(0, count=1, device_id=9)  # neither proxied nor local
    assert r.isError() and r.exception_code == 0x0B


def test_two_tcp_clients_at_once_share_the_bus(tcp):
    # two connections asking at the same time: the RTU master's bus lock queues them, each gets its answers
    port = tcp.comm_params.port
    results = {}

    def worker(unit):
        c = ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
        assert c.connect()
        try:
            results[unit] = [c.read_holding_registers(100 + i, count=2, device_id=unit).registers for i in range(8)]
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(u,)) for u in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for unit in (1, 2):
        assert results[unit] == [[unit * 1000 + 100 + i, unit * 1000 + 101 + i] for i in range(8)]


# -- the proxy in the whole firmware: setting modbus_proxy, the SunSpec server's port, the device layer's bus --

import json  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402

from site_rig import METER, SiteRig  # noqa: E402

PROXY = "101-102,50@COM1"  # the DEM4A (holding) and integer meter (input) of the site peers; 50 is silent
SUNSPEC_ID = 10


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    rig = SiteRig(n_boxes=1, tmp_dir=str(tmp_path_factory.mktemp("proxy-site")), modbus_id=SUNSPEC_ID,
                  modbus_proxy=PROXY)
    try:
        rig.fw.wait_port(rig.fw.sunspec_port)
        assert rig.wait(lambda: rig.device("M1")["current_ma"][0] == 10000), rig.fw.read_output()
        client = ModbusTcpClient("127.0.0.1", port=rig.fw.sunspec_port, timeout=3, retries=0)
        assert client.connect()
        rig.client = client
        yield rig
        client.close()
    finally:
        rig.close()


def meter_comm(rig):
    return {d["dev_id"]: d for d in rig.fw.status()["device_comm"]}["M1"]


def test_app_reads_and_writes_reach_rtu_units_while_the_device_layer_polls_the_same_bus(site):
    c = site.client
    site.set_grid_ma(12000)
    answers = []
    for i in range(40):
        answers.append(c.read_holding_registers(0x000E, count=2, device_id=101).registers)  # DEM4A: 229.5 V
        answers.append(c.read_input_registers(0, count=3, device_id=102).registers)
        if i == 20:
            assert not c.write_register(0x50 + i, 4000 + i, device_id=101).isError()
            assert not c.write_registers(0x60, [7, 8, 9], device_id=101).isError()
    assert answers == [[0x4365, 0x8000], [2301, 2289, 2315]] * 40
    assert site.peers.get(101, 0x50 + 20) == [4020]
    assert c.read_holding_registers(0x60, count=3, device_id=101).registers == [7, 8, 9]
    # meanwhile the firmware's own polling of the grid meter on that bus went on, without errors
    assert site.wait(lambda: site.device("M1")["current_ma"][:2] == [12000, 12000])
    assert meter_comm(site)["com_errors"] == 0 and not meter_comm(site)["com_err"]
    view = site.fw.ctl("proxy")
    assert view[0]["port"] == "COM1" and view[0]["units"] == [101, 102, 50] and view[0]["forwarded"] == 83


def test_app_silent_proxied_unit_gives_gateway_target_failed(site):
    r = site.client.read_holding_registers(0, count=1, device_id=50)
    assert r.isError() and r.exception_code == 0x0B
    assert site.client.read_input_registers(0, count=1, device_id=102).registers == [2301]


def mbap(tid, unit, pdu):
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def read_answer(sock):
    head = b""
    while len(head) < 7:
        head += sock.recv(7 - len(head))
    tid, _, length, unit = struct.unpack(">HHHB", head)
    body = b""
    while len(body) < length - 1:
        body += sock.recv(length - 1 - len(body))
    return tid, unit, body


def test_app_proxied_answers_carry_the_requests_transaction_ids(site):
    s = socket.create_connection(("127.0.0.1", site.fw.sunspec_port), timeout=5)
    try:
        # pipelined: a proxied read, a silent proxied unit, the SunSpec server, a proxied write
        s.sendall(mbap(0xBEEF, 101, b"\x03\x00\x0e\x00\x02") + mbap(0x0102, 50, b"\x03\x00\x00\x00\x01")
                  + mbap(0x7FFF, SUNSPEC_ID, b"\x03\x9c\x40\x00\x02") + mbap(0xFFFE, 101, b"\x06\x00\x70\x12\x34"))
        answers = [read_answer(s) for _ in range(4)]
    finally:
        s.close()
    assert answers == [(0xBEEF, 101, b"\x03\x04\x43\x65\x80\x00"), (0x0102, 50, b"\x83\x0b"),
                       (0x7FFF, SUNSPEC_ID, b"\x03\x04SunS"), (0xFFFE, 101, b"\x06\x00\x70\x12\x34")]


def test_app_units_neither_proxied_nor_served_keep_the_servers_answer(site):
    c = site.client
    r = c.read_holding_registers(0, count=1, device_id=77)
    assert r.isError() and r.exception_code == 0x0B
    assert c.read_holding_registers(40000, count=2, device_id=SUNSPEC_ID).registers == [0x5375, 0x6E53]
    # unit 1 is a wallbox the firmware polls on that bus, but not proxied: the TCP server does not know it
    r = c.read_holding_registers(8000, count=1, device_id=1)
    assert r.isError() and r.exception_code == 0x0B


@pytest.mark.parametrize("values, field, reason", [
    ({"modbus_proxy": "10-12@COM1"}, "modbus_proxy", "unit 10 is this box's own SunSpec server"),
    ({"modbus_proxy": "5@COM3"}, "modbus_proxy", "the board has no COM3 (it has COM1, COM2)"),
    ({"modbus_proxy": "5@COM2", "modbus_rtu_port": "COM2,9600,8,n,1"}, "modbus_proxy",
     "COM2 is this box's slave port (modbus_rtu_port)"),
    ({"modbus_proxy": "0,5@COM1"}, "modbus_proxy", "unit id out of range 1..247"),
    ({"modbus_proxy": "5-9@COM1;7@COM2"}, "modbus_proxy", "unit 7 is listed twice"),
    ({"modbus_id": 101}, "modbus_id", "conflicts with modbus_proxy"),
    ({"slave_rtu_port": "COM1,19200,8,n,1"}, "slave_rtu_port", "COM1 is this box's slave port"),
])
def test_app_refuses_a_proxy_setting_that_cannot_work_and_changes_nothing(site, values, field, reason):
    before = site.fw.ctl("config_get")["values"]
    with pytest.raises(RuntimeError) as e:
        site.fw.ctl("config_set", values=values)
    assert "%s: " % field in str(e.value) and reason in str(e.value)
    assert site.fw.ctl("config_get")["values"] == before


def test_app_proxy_follows_the_device_layer_when_the_device_list_changes(site):
    c = site.client
    devices = site.fw.ctl("config_get", key="devices")
    applied = "device list applied"
    n0 = "".join(site.fw.output).count(applied)
    # no device on COM1 any more: the layer opens the bus for the proxy alone
    site.fw.ctl("config_set", key="devices", value=[d for d in devices if not d["address"].startswith("COM")])
    assert site.wait(lambda: "".join(site.fw.output).count(applied) == n0 + 1, timeout=10)
    assert site.wait(lambda: not c.read_input_registers(0, count=3, device_id=102).isError(), timeout=5)
    assert c.read_input_registers(0, count=3, device_id=102).registers == [2301, 2289, 2315]
    # the devices back: the proxy uses the new layer's master again, next to the meter's polling
    site.fw.ctl("config_set", key="devices", value=devices)
    assert site.wait(lambda: "".join(site.fw.output).count(applied) == n0 + 2, timeout=10)
    site.set_grid_ma(9000)
    for _ in range(20):
        assert c.read_holding_registers(0x000E, count=2, device_id=101).registers == [0x4365, 0x8000]
    assert site.wait(lambda: site.device("M1")["current_ma"][:2] == [9000, 9000])
    assert not meter_comm(site)["com_err"]
    assert "Traceback" not in site.fw.read_output()


SNIPPET_OFF = """
import json, os, sys
from loadpilot import board
from loadpilot.app import App
os.mkdir(%(fs)r)
if %(cfg)r:
    with open(%(fs)r + '/config.json', 'w') as f:
        f.write(json.dumps(%(cfg)r))
app = App(board.load(%(board)r), %(fs)r)
print('PROXY', 'loadpilot.modbus.proxy_service' in sys.modules, 'loadpilot.modbus.proxy' in sys.modules)
"""


@pytest.mark.parametrize("cfg, loaded", [({}, "False False"), ({"modbus_proxy": "5@COM1"}, "True True")])
def test_an_unset_proxy_is_not_even_imported(tmp_path, cfg, loaded):
    rc, out = firmware_proc.run_snippet(SNIPPET_OFF % {"fs": str(tmp_path / "fs"), "cfg": cfg,
                                                       "board": ptybus.BOARD})
    assert rc == 0, out
    assert "PROXY " + loaded in out, out
