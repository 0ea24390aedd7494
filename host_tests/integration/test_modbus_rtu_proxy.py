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
