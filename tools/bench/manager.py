"""Benchmark: the Charging Manager's three figures, each next to its bar or baseline:
  1. one manager cycle for 25 chargepoints on the MicroPython binary (below);
  2. the bus cycle for 25 RTU wallboxes + grid meter next to the wire minimum (bar: 1.25 x), without and then
     with TCP-to-RTU proxy traffic on the same bus, and the bus time the proxy adds (bus.py, also runnable alone);
  3. the latency from an overload reading to reduced set-points on the bus (overload.py, also alone).

1. prints CPU time per cycle (median and worst over many cycles, unix port on this host) and bytes allocated
per cycle (gc.mem_alloc delta with gc disabled), next to the baseline: the 3 s bus cycle the manager runs in.
Run: .venv/bin/python tools/bench/manager.py [cycles]   (--cycle-only: figure 1 alone)
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

import firmware_proc  # noqa: E402

BUS_CYCLE_US = 3000000

SNIPPET = """
sys.path.insert(0, %(host_tests)r)
import gc, time, manager_fixture
from loadpilot.manager import allocate

def main(n):
    gc.collect()
    heap0 = gc.mem_alloc()
    site, p, st = manager_fixture.build()
    manager_fixture.physics(site, st, 0)
    gc.collect()
    heap1 = gc.mem_alloc()
    allocate(site, p, st, 0)
    gc.collect()
    site_bytes = heap1 - heap0
    footprint = gc.mem_alloc() - heap1
    us = []
    allocs = []
    for k in range(1, n + 1):
        manager_fixture.physics(site, st, k)
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        t0 = time.ticks_us()
        allocate(site, p, st, k * 3000)
        t1 = time.ticks_us()
        b = gc.mem_alloc()
        gc.enable()
        us.append(time.ticks_diff(t1, t0))
        allocs.append(b - a)
    us.sort()
    allocs.sort()
    print('BENCH', us[len(us) // 2], us[len(us) * 99 // 100], us[-1], allocs[len(allocs) // 2], allocs[-1],
          footprint, site_bytes, n)

main(%(cycles)d)
"""


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    cycles = int(args[0]) if args else 2000
    rc, out = firmware_proc.run_snippet(SNIPPET % {"host_tests": os.path.join(ROOT, "host_tests"),
                                                   "cycles": cycles}, timeout=600)
    if rc != 0:
        sys.exit("benchmark failed:\n" + out)
    line = [x for x in out.splitlines() if x.startswith("BENCH ")][0]
    med, p99, worst, alloc_med, alloc_max, footprint, site_bytes, n = [int(x) for x in line.split()[1:]]
    print("1. manager cycle, 25 chargepoints (MicroPython %s, unix port on this host), %d cycles" % (
        "1.29", n))
    print("  CPU per cycle      median %6d us   p99 %6d us   worst %6d us" % (med, p99, worst))
    print("  baseline           bus cycle budget %d us -> %d cycles fit (median), %.3f %% of the budget" % (
        BUS_CYCLE_US, BUS_CYCLE_US // max(med, 1), 100.0 * med / BUS_CYCLE_US))
    print("  allocated / cycle  median %d bytes   max %d bytes   (bar: 0 in steady state)" % (alloc_med, alloc_max))
    print("  heap held          manager state %d bytes, site + params %d bytes (64-bit unix port; object slots "
          "are half that size on the 32-bit ESP32)" % (footprint, site_bytes))
    print("  note: not measured on an ESP32 here; even a 100x slower CPU would need %d us = %.1f %% of the "
          "bus cycle" % (med * 100, 100.0 * med * 100 / BUS_CYCLE_US))
    if alloc_max:
        sys.exit("FAIL: a steady-state cycle allocated %d bytes" % alloc_max)
    if "--cycle-only" in sys.argv:
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bus
    import overload
    print("\n2. ", end="")
    bus.main()
    print("\n3. ", end="")
    overload.main()


if __name__ == "__main__":
    main()
