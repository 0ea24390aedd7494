"""Heap of the per-wallbox plug-in count (site.DeviceState.plugins, docs/sessions.md "A car replaced between two
looks") on the MicroPython binary: bytes per instance of each object that holds a count (the wallbox's
DeviceState, the manager's Chargepoint and Slot, the authorizer's _Slot, a Session), 25 of each, and the bytes a
thousand set_status calls allocate (plug-ins and unplugs: the hot path). Give a firmware folder to measure
another tree in the same way, e.g. the commit before the count as the baseline:

    .venv/bin/python tools/bench/plug_count.py
    git archive <commit> firmware | tar -x -C /tmp/base && .venv/bin/python tools/bench/plug_count.py /tmp/base/firmware
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
import firmware_proc  # noqa: E402

CODE = r"""
import gc, sys
sys.path.insert(0, %(fw)r)
from loadpilot import site
from loadpilot.manager.model import Chargepoint
from loadpilot.manager.state import Slot
from loadpilot.sessions.journal import Session
from loadpilot.sessions.auth import _Slot
def per(make, n=25):
    gc.collect()
    f0 = gc.mem_free()
    keep = [make(i) for i in range(n)]
    gc.collect()
    return (f0 - gc.mem_free()) // n
for name, make in (("DeviceState", lambda i: site.DeviceState("E%%d" %% i)),
                   ("manager Chargepoint", lambda i: Chargepoint("E%%d" %% i)),
                   ("manager Slot", lambda i: Slot("E%%d" %% i)), ("auth _Slot", lambda i: _Slot()),
                   ("Session", lambda i: Session())):
    print("%%-20s %%4d bytes each" %% (name, per(make)))
d = site.DeviceState("E1")
if hasattr(d, "set_status"):
    d.set_status(2)
    gc.collect()
    a0 = gc.mem_alloc()
    for k in range(1000):
        d.set_status(3 if k & 1 else 1)
    print("set_status x1000     %%4d bytes allocated (%%d plug-ins counted)" %% (gc.mem_alloc() - a0, d.plugins))
"""


def main():
    fw = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "firmware")
    out = subprocess.run([firmware_proc.micropython_binary(), "-c", CODE % {"fw": os.path.abspath(fw)}],
                         capture_output=True, text=True, timeout=60)
    print("firmware:", fw)
    print(out.stdout + out.stderr, end="")


if __name__ == "__main__":
    main()
