"""Modbus TCP admission on the booted firmware (issue 12): a master that connects is served while idle
sockets, slowloris sockets and a connect storm go at the SunSpec server at once. Behaviour only; the
served-within-1-s figure is tools/bench/admission.py's."""
import time

import pytest

import firmware_proc
import tcp_attacks

pytestmark = pytest.mark.mp

SUNS = [0x5375, 0x6E53]


@pytest.fixture(scope="module")
def fw():
    f = firmware_proc.Firmware().start()
    try:
        f.wait_port(f.sunspec_port)
        yield f
    finally:
        f.stop()
    assert "Traceback" not in f.read_output()


def test_master_is_served_while_attackers_hold_and_flood_sockets(fw):
    port = fw.sunspec_port
    idle = tcp_attacks.IdleSockets(port, n=50).start()
    slow = tcp_attacks.Slowloris(port, n=4, interval_s=0.5).start()
    storm = tcp_attacks.ConnectStorm(port, n=2).start()
    try:
        time.sleep(1.0)  # every slot taken by an attacker before the master comes
        lat = tcp_attacks.master_reads(port, 40, unit=1, addr=40000, count=2, timeout_s=5.0,
                                       check=lambda regs: regs == SUNS)
        # keep the attack on until the attackers have seen their sockets closed (the idle thread's first pass
        # over its 50 connects can take seconds: a burst of connects overflows the listen backlog, and the
        # host's TCP retries a dropped SYN after 1 s)
        deadline = time.monotonic() + 20
        while (slow.closed_by_server == 0 or idle.closed_by_server == 0) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for a in (idle, slow, storm):
            a.stop()
    assert all(x is not None for x in lat), lat  # every read of the master answered, and answered right
    assert idle.closed_by_server > 0  # idle attackers were evicted to make room
    assert slow.closed_by_server > 0  # trickling sockets were closed
    assert storm.connects > 0
    # after the attack, the server is still whole: a persistent client too
    from pymodbus.client import ModbusTcpClient
    with ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0) as c:
        for _ in range(5):
            assert c.read_holding_registers(40000, count=2, device_id=1).registers == SUNS


def test_a_persistent_master_keeps_its_connection_against_idle_sockets(fw):
    """A master that keeps asking is never the longest idle, so idle attackers never take its connection."""
    from pymodbus.client import ModbusTcpClient
    port = fw.sunspec_port
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    assert c.connect()
    assert c.read_holding_registers(40000, count=2, device_id=1).registers == SUNS  # it has been polling
    idle = tcp_attacks.IdleSockets(port, n=20).start()
    try:
        sock = c.socket
        t0 = time.monotonic()
        n = 0
        # at least 2 s, and until the idle attackers have had sockets evicted (see the test above)
        while time.monotonic() - t0 < 2.0 or (idle.closed_by_server == 0 and time.monotonic() - t0 < 20):
            assert c.read_holding_registers(40000, count=2, device_id=1).registers == SUNS
            n += 1
            time.sleep(0.02)
        assert c.socket is sock  # the same connection all along: it was never evicted
        assert idle.closed_by_server > 0 and n > 10
    finally:
        idle.stop()
        c.close()
