"""Flash wear of the configuration store, measured on the MicroPython binary.

Runs the store on littlefs over the counting flash model (firmware/loadpilot/hal/flashdev.py, 64 blocks of
4 KB) with a simulated clock: one persistent setting changed every second for 24 h, the same with only
volatile values, the same value set every second, and (as the baseline) the same load with commits after
1 s instead of 150 s, measured for one hour and scaled to a day.

Then the session journal (firmware/loadpilot/sessions/) on the same chip model, driven by the real tracker: 4
wallboxes with two sessions each a day (5 h plugged in, 3 h of it at 11 kW), for 10 days, beside the baseline of
a checkpoint every second.

    .venv/bin/python tools/bench/flash_wear.py
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
import firmware_proc  # noqa: E402

SIM_DIR = os.path.join(ROOT, "host_tests", "integration")

CODE = """
import flash_sim_mp as f
f.report(f.wear_day("persistent"))
f.report(f.wear_day("volatile"))
f.report(f.wear_day("unchanged"))
f.report(f.wear_day("persistent", seconds=3600, delay_s=1))
import session_flash_mp as sf
sf.report(sf.wear_day(seconds=10 * 86400))
sf.report(sf.wear_day(every_s=1))
"""


def run():
    fd, path = tempfile.mkstemp(suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write("import sys\nsys.path.insert(0, %r)\nsys.path.insert(0, %r)\n" % (firmware_proc.FIRMWARE, SIM_DIR))
        f.write(CODE)
    try:
        p = subprocess.run([firmware_proc.micropython_binary(), "-X", "heapsize=16M", path],
                           capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(path)
    if p.returncode:
        sys.exit(p.stdout + p.stderr)
    return [json.loads(l[7:]) for l in p.stdout.splitlines() if l.startswith("RESULT ")]


def main():
    persistent, volatile, unchanged, baseline, sessions, sessions_base = run()
    scale = 86400 // baseline["seconds"]
    bar = 86400 // 150
    print("config store flash wear, MicroPython %s binary, littlefs on %d x 4 KB blocks, config %d bytes"
          % ("1.29", 64, persistent["config_bytes"]))
    print("%-44s %10s %10s %14s %10s" % ("24 h simulated, one change per second", "saves/day", "erases/day",
                                          "max erases/blk", "programs"))
    rows = (("one persistent setting, 150 s commit delay", persistent, 1),
            ("only volatile values (percent, flags, vars)", volatile, 1),
            ("same value set every second", unchanged, 1),
            ("baseline: 1 s commit delay (1 h x 24)", baseline, scale))
    for name, r, k in rows:
        print("%-44s %10d %10d %14d %10d" % (name, r["saves"] * k, r["erases"] * k, r["erases_max_block"] * k,
                                              r["programs"] * k))
    worst = persistent["erases_max_block"]
    if worst:
        print("most-erased block at this rate reaches 100000 erase cycles (typical NOR rating) in %.0f years"
              % (100000.0 / worst / 365))
    print("bar: at most %d saves/day (86400 s / 150 s): %s" % (bar, "PASS" if persistent["saves"] <= bar else "FAIL"))
    print("bar: volatile-only and unchanged runs write nothing: %s"
          % ("PASS" if volatile["saves"] + volatile["erases"] + unchanged["saves"] + unchanged["erases"] == 0
             else "FAIL"))
    print()
    print("session journal flash wear, same chip model, %d wallboxes x 2 sessions/day (5 h plugged, 3 h at 11 kW)"
          % sessions["boxes"])
    print("%-44s %10s %10s %14s %10s" % ("per day", "sessions", "erases", "max erases/blk", "writes"))
    days = sessions["seconds"] // 86400
    for name, r, k in (("checkpoint per 0.1 kWh / 60 s / 15 min idle", sessions, days),
                       ("baseline: checkpoint every second", sessions_base, 1)):
        print("%-44s %10d %10d %14d %10d" % (name, r["sessions"] // k, r["erases"] // k,
                                              r["erases_max_block"] // k, r["checkpoints"] // k + r["sessions"] // k))
    per_block = sessions["erases_max_block"] / days
    print("most-erased block over %d days: %d erases (%.1f/day): 100000 erase cycles in %.0f years"
          % (days, sessions["erases_max_block"], per_block, 100000.0 / per_block / 365))
    print("bar: fewer erases than the every-second baseline: %s"
          % ("PASS" if sessions["erases"] // days < sessions_base["erases"] else "FAIL"))


if __name__ == "__main__":
    main()
