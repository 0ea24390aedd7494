"""Resident heap of the user store (docs/users.md) on the MicroPython binary: the venv's 64-bit unix port running
the firmware as .mpy files (compiled as a deploy ships them, tools/bench/auth_heap.py). gc.mem_free() before and
after each import (gc.mem_alloc() after gc.collect()); then a Users store loaded from flash with 0, 1, 8 and 32 users of 8 RFIDs
each, and beside it, in the same run, the baseline the store's design avoids: the same users kept as the
document's dicts (as json.load gives them). The 32-bit frozen figure of a module is about 1/4 of its 64-bit figure
(docs/firmware.md); the users' strings are the same bytes on both word sizes, so they shrink less.

    .venv/bin/python tools/bench/users_heap.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import auth_heap  # noqa: E402
firmware_proc = auth_heap.firmware_proc

CODE = r"""
import gc, json, os
def free():  # mem_alloc, not mem_free: the unix port's mem_free misses what a grown heap holds
    gc.collect()
    return -gc.mem_alloc()
out = []
from loadpilot.log import Log
log = Log(size=8, console_level=100)
import loadpilot.api.commands, loadpilot.sessions.ids
f = free()
import loadpilot.sessions.users
out.append(("import sessions.users", f - free()))
f = free()
import loadpilot.api.user_cmd
out.append(("import api.user_cmd", f - free()))
f = free()
import loadpilot.api.rfid_fn
out.append(("import api.rfid_fn", f - free()))
f = free()
L = loadpilot.api.rfid_fn.Learning("10000000000000", ("E2",), 0)
out.append(("one armed Learning", f - free()))
L = None
from loadpilot.sessions.users import Users
def user(i):
    return {"id": "%%014d" %% (10000000000000 + i), "name": "User %%d" %% i, "dev_ids": ["E%%d" %% (1 + i %% 3)],
            "priority": 1 + i %% 10, "rfids": [{"id": "%%08X" %% (0xA0000000 + i * 16 + k), "name": "card %%d" %% k}
                                              for k in range(8)]}
def write(n):  # in a function: no stale reference to the writer is left on the stack (a conservative GC)
    try:
        os.remove(%(root)r + "/users.jsonl")
    except OSError:
        pass
    us = Users(%(root)r, log)
    for i in range(n):
        us.set(user(i))
def load():
    return Users(%(root)r, log)  # loaded from flash, as at boot
def dicts(n):
    return [json.loads(json.dumps(user(i))) for i in range(n)]
for n in (0, 1, 8, 32):
    write(n)
    f = free()
    us = load()
    out.append(("Users, %%d users x 8 RFIDs" %% n, f - free()))
    us = None
    f = free()
    d = dicts(n)
    out.append(("baseline: %%d users as dicts" %% n, f - free()))
    d = None
print("RESULT " + json.dumps(out))
"""


def main():
    root = tempfile.mkdtemp(prefix="lp-users-heap-")
    mpy = tempfile.mkdtemp(prefix="lp-users-mpy-")
    auth_heap.compile_mpy(mpy)
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
    print("users: resident heap on the 64-bit unix binary (bytes)")
    for k, v in json.loads(lines[0][7:]):
        print("  %-34s %7d" % (k, v))


if __name__ == "__main__":
    main()
