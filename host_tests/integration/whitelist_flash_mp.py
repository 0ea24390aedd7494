# Runs on the MicroPython binary (not a pytest module): the whitelist (sessions/whitelist.py) on littlefs over the
# counting, power-cuttable flash model (hal/flashdev.py). Used by test_whitelist_flash.py; prints "RESULT <json>".
import json
import os

from flash_sim_mp import BLOCKS, BLOCK_SIZE, mount, quiet_log
from loadpilot.hal.flashdev import FlashBlockDevice
from loadpilot.sessions.whitelist import Whitelist


def _ids(wl):
    return [wl.get(i) for i in range(len(wl))]


def _load(data, point):
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(data))
    mount(dev, point)
    try:
        return _ids(Whitelist(point, quiet_log()))
    finally:
        os.umount(point)


def _base():
    """A chip holding 10 IDs whose log is one delete short of compaction (an add still only appends)."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    wl = Whitelist("/flash", quiet_log())
    for i in range(10):
        wl.add("%08X" % (0xA0000000 + i))
    while wl.log_entries < 2 * len(wl) + 64:
        wl.add("FFFFFFFF")
        wl.delete("FFFFFFFF")
    os.umount("/flash")
    return bytes(dev.data)


_CSV = "id\n" + "".join("%08X\n" % (0xB0000000 + i) for i in range(50))
OPS = (
    ("add", lambda wl: wl.add("07A47731")),  # one appended entry
    ("delete that compacts", lambda wl: wl.delete("A0000002")),  # appended, then the log rewritten
    ("import", lambda wl: wl.import_part(_CSV)),
    ("delete all", lambda wl: wl.clear()),
)


def power_cut():
    """Cut power at every erase/program of each kind of whitelist write (partial and clean cuts). After each
    cut, boot from what the chip holds: the list is exactly the old or the new one, and a further add on it
    is kept across the next boot."""
    base = _base()
    points = 0
    outcomes = {"old": 0, "new": 0}
    failures = []
    ops_per = {}
    for name, op in OPS:
        old = _load(base, "/cut")
        d = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
        mount(d, "/cut")
        wl = Whitelist("/cut", quiet_log())
        p0 = d.programs + d.total_erases()
        op(wl)
        ops = d.programs + d.total_erases() - p0
        os.umount("/cut")
        ops_per[name] = ops
        new = _load(d.data, "/cut")
        if new == old:
            failures.append("%s changed nothing" % name)
        for partial in (True, False):
            for k in range(ops + 1):
                d = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
                mount(d, "/cut")
                wl = Whitelist("/cut", quiet_log())
                d.cut_power_after(k, partial)
                try:
                    op(wl)
                except OSError:
                    pass
                d.detach()
                try:
                    os.umount("/cut")
                except OSError:
                    pass
                points += 1
                try:
                    got = _load(d.data, "/cut")
                except Exception as e:
                    failures.append("%s cut %d partial %s: boot failed %r" % (name, k, partial, e))
                    continue
                if got == old:
                    outcomes["old"] += 1
                elif got == new:
                    outcomes["new"] += 1
                else:
                    failures.append("%s cut %d partial %s: %d IDs, neither old (%d) nor new (%d)"
                                    % (name, k, partial, len(got), len(old), len(new)))
                    continue
                # power back: the list is usable and the next change is kept
                d2 = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(d.data))
                mount(d2, "/cut")
                Whitelist("/cut", quiet_log()).add("0C0FFEE0")
                os.umount("/cut")
                again = _load(d2.data, "/cut")
                if "0C0FFEE0" not in again or len(again) != len(got) + 1:
                    failures.append("%s cut %d partial %s: the next add was lost" % (name, k, partial))
    return {"cut_points": points, "ops": ops_per, "outcomes": outcomes, "failures": failures}


def wear(n=1000, last=100):
    """n IDs added one by one; for the last `last` adds (a list of n-last..n IDs) the flash programs and erases,
    beside the baseline this design avoids: the whole list (13 bytes per ID) rewritten at every change,
    measured on a fresh chip in the same run."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    wl = Whitelist("/flash", quiet_log())
    for i in range(n - last):
        wl.add("%08X" % (0xC0000000 + i * 13))
    p0, e0 = dev.programs, dev.total_erases()
    for i in range(n - last, n):
        wl.add("%08X" % (0xC0000000 + i * 13))
    add_prog, add_erase = dev.programs - p0, dev.total_erases() - e0
    size = os.stat("/flash/whitelist.log")[6]
    os.umount("/flash")
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    p0, e0 = dev.programs, dev.total_erases()
    for i in range(n - last, n):
        with open("/flash/whole.new", "wb") as f:
            f.write(bytes(13 * (i + 1)))
        os.rename("/flash/whole.new", "/flash/whole")
    base_prog, base_erase = dev.programs - p0, dev.total_erases() - e0
    os.umount("/flash")
    return {"ids": n, "changes": last, "append_programs": add_prog, "append_erases": add_erase, "log_bytes": size,
            "rewrite_programs": base_prog, "rewrite_erases": base_erase}


def report(result):
    print("RESULT " + json.dumps(result))
