"""Benchmark: the simulated energy meter (firmware/loadpilot/soft_meter.py) on the MicroPython binary, 25 wallboxes
charging at 11 kW without a meter of their own, stepped as the manager cycle steps it (every 2 s):
  - CPU time per step (median and worst), next to the baseline: the same loop over the 25 boxes that only looks
    each one up in the Site (the floor any per-box work costs);
  - bytes allocated per step between saves (gc.mem_alloc delta with gc disabled): the bar is 0;
  - saves asked of the store per simulated hour and the bytes one save allocates; the flash is written at most
    once per commit_delay_s (150 s) whatever the count, shared with the S0 counters.
Run: .venv/bin/python tools/bench/soft_meter.py [steps]
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

import firmware_proc  # noqa: E402

SNIPPET = """
import gc, time
from loadpilot.site import Site
from loadpilot.soft_meter import SoftMeter

class Store:
    def __init__(self):
        self.saves = 0
        self.v = {"soft_meter_wh": ""}
    def get(self, k):
        return self.v[k]
    def set_many(self, d):
        self.v.update(d)
        self.saves += 1
    def subscribe(self, fn):
        pass

class Cp:
    def __init__(self, d):
        self.dev_id = d
        self.phases = 3

ids = ["E%%d" %% i for i in range(1, 26)]
site = Site()
site.configure(ids)
for d in ids:
    dev = site.device(d)
    dev.status = 3
    dev.reading.update(current_ma=[16000, 16000, 16000], now_ms=0)
store = Store()
m = SoftMeter(site, store)
cps = [Cp(d) for d in ids]

def floor(cps, now):
    for i in range(len(cps)):
        d = site.device(cps[i].dev_id)
        if d is None or d.reading.own_energy:
            continue

def timed(fn, n):
    t = 0
    fn(cps, t)
    us = []
    for _ in range(n):
        t += 2000
        a = time.ticks_us()
        fn(cps, t)
        us.append(time.ticks_diff(time.ticks_us(), a))
    us.sort()
    return us[len(us) // 2], us[-1]

n = %(n)d
base_med, base_max = timed(floor, n)
med, worst = timed(m.step, n)
print("step per cycle, 25 boxes: median %%d us, worst %%d us (baseline, look-up only: median %%d us, worst %%d us)"
      %% (med, worst, base_med, base_max))
# allocation between saves (in a function: a new global name would grow the module dict), saves counted apart
def alloc_steps(n, t):
    m.step(cps, t)
    steps = alloc = 0
    gc.collect()
    gc.disable()
    for _ in range(n):
        s0 = store.saves
        a = gc.mem_alloc()
        t += 2000
        m.step(cps, t)
        if store.saves == s0:
            alloc += gc.mem_alloc() - a
            steps += 1
    gc.enable()
    return alloc, steps, t

alloc, steps, t = alloc_steps(n, 10 ** 6)
print("allocated per step without a save: %%d B over %%d steps (bar: 0)" %% (alloc, steps))
gc.collect()
gc.disable()
a = gc.mem_alloc()
m.save(t)
one = gc.mem_alloc() - a
gc.enable()
store.saves = 0
for _ in range(1800):  # one simulated hour
    t += 2000
    m.step(cps, t)
print("saves asked per hour at 11 kW on 25 boxes: %%d, %%d B allocated per save; flash writes <= %%d per hour "
      "(commit_delay_s 150)" %% (store.saves, one, 3600 // 150))
"""


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rc, out = firmware_proc.run_snippet(SNIPPET % {"n": n}, timeout=120)
    print(out.strip())
    return rc


if __name__ == "__main__":
    sys.exit(main())
