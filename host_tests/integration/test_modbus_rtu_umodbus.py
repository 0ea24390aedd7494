"""Interop with the other MicroPython Modbus stack: the micropython-modbus 2.3.7 (umodbus) RTU master, run
on the MicroPython binary with a small machine.UART shim over the pty (the unix port has no machine.UART),
against our RTU slave on the binary."""
import os

import pytest

import ptybus

pytestmark = pytest.mark.mp
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def steps():
    if not os.path.isdir(os.path.join(ptybus.UMODBUS_DIR, "umodbus")):
        pytest.fail("micropython-modbus peer missing: run `make setup` (it unpacks build/peers/umodbus)")
    bus = ptybus.PtyPair()
    slave = ptybus.start_micropython(open(os.path.join(HERE, "mp_rtu_slave.py")).read(), bus.fw)
    try:
        ptybus.wait_line(slave, "slave ready")
        peer = ptybus.start_micropython(open(os.path.join(HERE, "mp_umodbus_master.py")).read(), bus.fw,
                                        args={"pty": bus.peer}, extra_path=(ptybus.UMODBUS_DIR, HERE))
        try:
            out, _ = peer.communicate(timeout=30)
        finally:
            ptybus.stop(peer)
    finally:
        ptybus.stop(slave)
        bus.close()
    return ptybus.step_results(out)


def test_umodbus_reads_both_units(steps):
    assert steps["read1"]["value"] == [100, 101, 102, 103, 104]
    assert steps["read7"]["value"] == [7000, 7001, 7002]
    assert steps["input1"]["value"] == [250, 251]
    assert steps["read125"]["value"] == [160 + i for i in range(125)]


def test_umodbus_writes_land(steps):
    assert steps["write1"]["value"] is True
    assert steps["writemany7"]["value"] is True
    assert steps["readback1"]["value"] == [159, 60000, 161]
    assert steps["readback7"]["value"] == [7099, 11, 22, 33, 7103]


def test_umodbus_sees_our_exceptions_and_our_silence(steps):
    assert "exception code: 2" in steps["bad_address"]["error"]
    assert "exception code: 1" in steps["bad_function"]["error"]
    assert "no data received" in steps["unknown_unit"]["error"]
    assert steps["after"]["value"] == [7129]
