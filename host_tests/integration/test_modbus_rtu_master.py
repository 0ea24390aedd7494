"""Our RTU master on the real MicroPython binary against a pymodbus 3.16 RTU server on a pty bus."""
import os

import pytest

import ptybus

pytestmark = pytest.mark.mp
HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_MS = 300  # the master's response timeout in mp_rtu_master.py


@pytest.fixture(scope="module")
def steps():
    """Run the whole master script once; return its JSON lines by step name."""
    bus = ptybus.PtyPair()
    server = ptybus.start_python("pymodbus_rtu_server.py", bus.peer, "1,2", 9600)
    try:
        ptybus.wait_line(server, "server on")
        master = ptybus.start_micropython(open(os.path.join(HERE, "mp_rtu_master.py")).read(), bus.fw)
        try:
            out, _ = master.communicate(timeout=30)
        finally:
            ptybus.stop(master)
    finally:
        ptybus.stop(server)
        bus.close()
    return ptybus.step_results(out)


def test_reads(steps):
    assert steps["read1"]["value"] == [1000, 1001, 1002, 1003, 1004]
    assert steps["input2"]["value"] == [2011, 2012, 2013]
    assert steps["read125"]["value"] == [2100 + i for i in range(125)]


def test_writes_land_in_the_slave(steps):
    assert steps["write1"]["value"] is None
    assert steps["writemany2"]["value"] is None
    assert steps["readback1"]["value"] == [1002, 4242, 1004]
    assert steps["readback2"]["value"] == [2019, 7, 8, 65535, 2023]


def test_exception_answers_raise_with_their_code(steps):
    assert steps["bad_address"]["exception"] == 2


def test_a_silent_unit_costs_its_timeout_and_the_loop_keeps_running(steps):
    s = steps["silent"]
    assert s["timeout"] is True
    assert TIMEOUT_MS <= s["ms"] < TIMEOUT_MS + 1000
    assert s["ticks"] >= 10  # the 10 ms ticker kept running while the request waited
    assert steps["after_silent"]["value"] == [1000]
    r = steps["silent_retry"]  # one retry: two timeouts
    assert r["timeout"] is True and r["ms"] >= 2 * TIMEOUT_MS


def test_concurrent_requests_share_the_bus(steps):
    assert steps["concurrent"]["value"] == [[1010, 1011], [2010, 2011], [1012]]


def test_broadcast_write_reaches_the_slave_without_an_answer(steps):
    assert steps["broadcast"]["value"] is None
    assert steps["after_broadcast"]["value"] == [99]


def test_per_slave_statistics(steps):
    stats = steps["stats"]["stats"]
    assert set(stats) == {"1", "2", "9"}
    one, two, silent = stats["1"], stats["2"], stats["9"]
    assert (one["ok"], one["exceptions"], one["timeouts"]) == (7, 1, 0)
    assert one["last_error"] == "exception 2" and isinstance(one["last_error_ms"], int)
    assert (two["ok"], two["exceptions"], two["timeouts"]) == (5, 0, 0)
    assert two["last_error"] is None and two["last_error_ms"] is None
    assert (silent["ok"], silent["timeouts"], silent["crc_errors"]) == (0, 3, 0)
    assert silent["last_error"] == "timeout"
