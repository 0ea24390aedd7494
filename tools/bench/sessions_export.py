"""The CSV export of the charging history (firmware/loadpilot/sessions/history.py), measured on the MicroPython
binary: a journal of 1,000 closed sessions, exported as the MQTT answer does it (length in a first pass, then the
body chunk by chunk), with the live heap sampled after each chunk; beside it the baseline of building the whole
CSV as one bytes object first. Both runs also go through a small heap (SMALL_HEAP), where only one of them fits.

    .venv/bin/python tools/bench/sessions_export.py
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
import firmware_proc  # noqa: E402

SESSIONS = 1000
SMALL_HEAP = 128 * 1024  # the 64-bit binary with the modules compiled from source: the streamed export fits

SETUP = """
import gc, os, time
from loadpilot.log import Log
from loadpilot.site import Site
from loadpilot.sessions.journal import Journal
from loadpilot.sessions.tracker import SessionTracker
from loadpilot.sessions import history
ROOT = %(root)r
WALL0 = int(time.time()) - 20 * 86400  # 1,000 sessions over the last 20 days

def fill(n):
    clock = [0]
    wall = lambda: WALL0 + clock[0]
    log = Log(size=4, console_level=100)
    site = Site()
    site.configure(["E1", "E2"])
    t = SessionTracker(site, Journal(ROOT, log, wall=wall), log, lambda d: ("04A1B2C3D4E5F6", "enter_rfid"), wall)
    e = site.device("E1")
    e.reading.updated_ms = 0
    ms = 0
    for i in range(n):
        e.status = 3
        t.poll(ms)
        ms += 1000
        clock[0] += 1
        e.reading.import_wh += 7000 + i
        clock[0] += 1600
        ms += 1600000
        e.status = 1
        t.poll(ms)
    return t.journal
"""

RUN = """
j = Journal(ROOT, Log(size=4, console_level=100))
gc.collect()
base = gc.mem_alloc()
t0 = time.ticks_ms()
mode = %(mode)r
peak = 0
chunks = 0
size = 0
if mode == "stream":
    ex = history.CsvExport(j, int(time.time()))
    size = ex.length()
    for part in ex.parts():  # what MqttClient.publish_parts writes, one chunk at a time
        chunks += 1
        if chunks %% %(every)d == 0:
            gc.collect()
            peak = max(peak, gc.mem_alloc() - base)
        part = None
else:
    ex = history.CsvExport(j, int(time.time()))
    body = b"".join(ex.parts())  # the baseline: the whole file as one object, then sent
    size = len(body)
    chunks = 1
    gc.collect()
    peak = gc.mem_alloc() - base
ms = time.ticks_diff(time.ticks_ms(), t0)
print("RESULT " + json.dumps({"mode": mode, "bytes": size, "chunks": chunks, "peak_live": peak, "ms": ms}))
"""


def mp(code, heap=None):
    fd, path = tempfile.mkstemp(suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write("import sys, json\nsys.path.insert(0, %r)\n" % firmware_proc.FIRMWARE)
        f.write(code)
    try:
        args = [firmware_proc.micropython_binary()] + (["-X", "heapsize=%d" % heap] if heap else []) + [path]
        p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(path)
    out = p.stdout + p.stderr
    res = [json.loads(l[7:]) for l in out.splitlines() if l.startswith("RESULT ")]
    return res[0] if res else {"error": (out.strip().splitlines() or ["?"])[-1]}


def main():
    root = tempfile.mkdtemp(prefix="lp-sessions-")
    setup = SETUP % {"root": root}
    r = mp(setup + "fill(%d)\nprint('RESULT {}')\n" % SESSIONS)
    if "error" in r:
        sys.exit("filling the journal failed: %s" % r["error"])
    rows = []
    for mode in ("stream", "whole"):
        rows.append((mode, mp(setup + RUN % {"mode": mode, "every": 1}), mp(setup + RUN % {"mode": mode, "every": 50},
                                                                             heap=SMALL_HEAP)))
    print("CSV export of %d sessions (last 30 days), MicroPython 1.29 unix binary (64-bit)" % SESSIONS)
    print("%-46s %8s %8s %16s %14s" % ("", "bytes", "chunks", "peak live heap", "in %d KB heap" % (SMALL_HEAP // 1024)))
    names = {"stream": "streamed line by line (export_sessions)", "whole": "baseline: the whole CSV built first"}
    for mode, r, small in rows:
        fits = "ok" if "error" not in small else small["error"][:14]
        print("%-46s %8d %8d %14d B %14s" % (names[mode], r["bytes"], r["chunks"], r["peak_live"], fits))
    stream, whole = rows[0][1], rows[1][1]
    print("bar: streaming peak below 1/10 of the baseline's: %s"
          % ("PASS" if stream["peak_live"] * 10 < whole["peak_live"] else "FAIL"))
    import shutil
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
