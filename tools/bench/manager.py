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

# the whole manager cycle as the firmware runs it: the Site in, decisions, set-points and totals out
CYCLE_SNIPPET = """
import gc, os, time
from loadpilot.config.store import Store
from loadpilot.log import Log
from loadpilot.manager_cycle import ManagerCycle
from loadpilot.site import Site

def main(n, fs):
    try:
        os.mkdir(fs)
    except OSError:
        pass
    store = Store(fs, Log(console_level=100))
    devs = [{"dev_id": "E%%d" %% (i + 1), "driver": "http_input", "address": "", "max_charging_cur": 16000}
            for i in range(25)]
    devs.append({"dev_id": "M1", "driver": "http_input", "address": "", "role": 3})
    devs.append({"dev_id": "M2", "driver": "http_input", "address": "", "role": 2})
    store.set_many({"devices": devs, "max_total_current": 100000})
    site = Site()
    site.configure([d["dev_id"] for d in devs])
    mc = ManagerCycle(store, site, store.log)
    grid = site.device("M1").reading
    pv = site.device("M2").reading
    boxes = [site.device("E%%d" %% (i + 1)) for i in range(25)]
    us = []
    allocs = []
    for k in range(n):
        now = k * 2000
        g = grid.current_ma
        g[0] = 20000 + (k * 37) %% 9000
        g[1] = 15000 + (k * 53) %% 12000
        g[2] = 18000 + (k * 29) %% 7000
        grid.updated_ms = now
        pv.power_w = -((k * 211) %% 9000)
        pv.updated_ms = now
        for i in range(25):
            d = boxes[i]
            d.status = 3 if (k + i) %% 40 else 2
            sp = mc.setpoints.get(d.dev_id)
            c = d.reading.current_ma
            c[0] = c[1] = c[2] = sp[1] if sp is not None else 0
            d.reading.updated_ms = now
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        t0 = time.ticks_us()
        mc.cycle(now)
        t1 = time.ticks_us()
        b = gc.mem_alloc()
        gc.enable()
        if k >= 5:  # the first cycles fill the set-point dict and the manager's slots
            us.append(time.ticks_diff(t1, t0))
            allocs.append(b - a)
    us.sort()
    allocs.sort()
    print('CYCLE', us[len(us) // 2], us[-1], allocs[len(allocs) // 2], allocs[-1], len(us))

main(%(cycles)d, %(fs)r)
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
    import tempfile
    fs = tempfile.mkdtemp(prefix="lp-bench-cycle-")
    rc, out = firmware_proc.run_snippet(CYCLE_SNIPPET % {"cycles": min(cycles, 500), "fs": fs}, timeout=600)
    if rc != 0:
        sys.exit("benchmark failed:\n" + out)
    line = [x for x in out.splitlines() if x.startswith("CYCLE ")][0]
    c_med, c_worst, c_alloc_med, c_alloc_max, c_n = [int(x) for x in line.split()[1:]]
    print("  whole cycle        manager_cycle.ManagerCycle.cycle: Site in, decisions + set-points + 7 totals out,")
    print("                     25 wallboxes + grid + PV meter, %d cycles: median %d us, worst %d us" % (
        c_n, c_med, c_worst))
    print("  allocated / cycle  median %d bytes   max %d bytes   (bar: 0 in steady state)" % (
        c_alloc_med, c_alloc_max))
    if alloc_max or c_alloc_max:
        sys.exit("FAIL: a steady-state cycle allocated %d / %d bytes" % (alloc_max, c_alloc_max))
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
