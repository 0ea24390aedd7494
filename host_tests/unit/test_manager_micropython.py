"""The manager gives the same allocations on the real MicroPython binary as on CPython (same fixed
25-chargepoint site, 300 cycles with timers, fail-safe and shedding), and a cycle allocates nothing there."""
import json
import os

import pytest

import firmware_proc
import manager_fixture

HOST_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.mp
def test_micropython_allocations_equal_cpython():
    code = (
        "sys.path.insert(0, %r)\n"
        "import json, manager_fixture\n"
        "print('RESULT ' + json.dumps(manager_fixture.run(300)))\n" % HOST_TESTS)
    rc, out = firmware_proc.run_snippet(code, timeout=120)
    assert rc == 0, out
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][0]
    mp = json.loads(line[len("RESULT "):])
    cpy = manager_fixture.run(300)
    assert len(mp) == 300
    assert mp == cpy
    # The fixture is not trivial: cars charge, pause, and several reasons show up.
    reasons = {r[2] for cycle in cpy for r in cycle}
    assert {"failsafe", "shedding", "pv", "fuse", "group", "no_car"} <= reasons, reasons
    assert any(r[0] == 0 for r in cpy[-1]) and any(r[0] > 0 for r in cpy[-1])


@pytest.mark.mp
def test_micropython_cycle_allocates_nothing_in_steady_state():
    # Only the first cycle allocates (the per-chargepoint slots); after that, every cycle allocates 0 bytes,
    # through pauses, PV timers, a silent box, a silent meter and shedding.
    code = (
        "sys.path.insert(0, %r)\n"
        "import gc, manager_fixture\n"
        "from loadpilot.manager import allocate\n"
        "def main():\n"
        "    site, p, st = manager_fixture.build()\n"
        "    worst = 0\n"
        "    first = 0\n"
        "    for k in range(300):\n"
        "        manager_fixture.physics(site, st, k)\n"
        "        gc.collect()\n"
        "        gc.disable()\n"
        "        a = gc.mem_alloc()\n"
        "        allocate(site, p, st, k * 3000)\n"
        "        b = gc.mem_alloc()\n"
        "        gc.enable()\n"
        "        if k == 0:\n"
        "            first = b - a\n"
        "        elif b - a > worst:\n"
        "            worst = b - a\n"
        "    print('ALLOC', first, worst)\n"
        "main()\n" % HOST_TESTS)
    rc, out = firmware_proc.run_snippet(code, timeout=60)
    assert rc == 0, out
    first, worst = [int(x) for x in [x for x in out.splitlines() if x.startswith("ALLOC ")][0].split()[1:]]
    assert first > 0  # the measurement sees allocations at all
    assert worst == 0, out
