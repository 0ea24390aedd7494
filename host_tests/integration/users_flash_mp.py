# Runs on the MicroPython binary (not a pytest module): the user store (sessions/users.py) on littlefs over the
# counting, power-cuttable flash model (hal/flashdev.py). Used by test_users_flash.py; prints "RESULT <json>".
import json
import os

from flash_sim_mp import BLOCKS, BLOCK_SIZE, mount, quiet_log
from loadpilot.hal.flashdev import FlashBlockDevice
from loadpilot.sessions.users import Users


def _state(us):
    return json.dumps([json.loads(line) for line in us.lines()] + [bytes(us.index).hex(), us.meta])


def _load(data, point):
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(data))
    mount(dev, point)
    try:
        us = Users(point, quiet_log())
        return _state(us), us.damaged
    finally:
        os.umount(point)


def _user(i, rfids=8):
    return {"id": "%014d" % (10000000000000 + i), "name": "User %d" % i, "dev_ids": ["E%d" % (1 + i % 3)],
            "priority": 1 + i % 10, "rfids": [{"id": "%08X" % (0xA0000000 + i * 16 + k), "name": "card %d" % k}
                                              for k in range(rfids)]}


def _chip(n):
    """A chip holding n users (8 RFIDs each)."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    us = Users("/flash", quiet_log())
    for i in range(n):
        us.set(_user(i))
    os.umount("/flash")
    return bytes(dev.data)


OPS = (  # (name, users on the chip before, the change)
    ("create the first user", 0, lambda us: us.set(_user(0))),
    ("create a user", 31, lambda us: us.set(_user(31))),  # the list becomes full: 32 x 8 RFIDs
    ("change a user", 5, lambda us: us.set({"id": _user(2)["id"], "name": "Renamed", "rfids": []}, 2)),
    ("delete a user", 5, lambda us: us.delete(1)),
    ("delete the last user", 1, lambda us: us.delete(0)),
)


def power_cut():
    """Cut power at every erase/program of each kind of change (partial and clean cuts). After each cut, boot
    from what the chip holds: the users are exactly the old or the new ones, and a further change is kept."""
    points = 0
    outcomes = {"old": 0, "new": 0}
    failures = []
    ops_per = {}
    for name, n, op in OPS:
        base = _chip(n)
        old = _load(base, "/cut")[0]
        d = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
        mount(d, "/cut")
        us = Users("/cut", quiet_log())
        p0 = d.programs + d.total_erases()
        op(us)
        ops = d.programs + d.total_erases() - p0
        os.umount("/cut")
        ops_per[name] = ops
        new = _load(d.data, "/cut")[0]
        if new == old:
            failures.append("%s changed nothing" % name)
        for partial in (True, False):
            for k in range(ops + 1):
                d = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
                mount(d, "/cut")
                us = Users("/cut", quiet_log())
                d.cut_power_after(k, partial)
                try:
                    op(us)
                except OSError:
                    pass
                d.detach()
                try:
                    os.umount("/cut")
                except OSError:
                    pass
                points += 1
                try:
                    got, damaged = _load(d.data, "/cut")
                except Exception as e:
                    failures.append("%s cut %d partial %s: boot failed %r" % (name, k, partial, e))
                    continue
                if damaged:
                    failures.append("%s cut %d partial %s: users.json unreadable" % (name, k, partial))
                elif got == old:
                    outcomes["old"] += 1
                elif got == new:
                    outcomes["new"] += 1
                else:
                    failures.append("%s cut %d partial %s: neither old nor new" % (name, k, partial))
                    continue
                # power back: the store is usable and the next change is kept
                d2 = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(d.data))
                mount(d2, "/cut")
                us = Users("/cut", quiet_log())
                before = len(us)
                if before < 32:
                    us.set({"id": "99999999", "name": "after"})
                else:
                    us.delete(0)
                os.umount("/cut")
                again = json.loads(_load(d2.data, "/cut")[0])[:-2]
                if len(again) != (before + 1 if before < 32 else before - 1):
                    failures.append("%s cut %d partial %s: the next change was lost" % (name, k, partial))
    return {"cut_points": points, "ops": ops_per, "outcomes": outcomes, "failures": failures}


def full():
    """The limits: 32 users x 8 RFIDs fit; the 33rd user and a 9th RFID are refused, changing nothing."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    us = Users("/flash", quiet_log())
    for i in range(32):
        us.set(_user(i))
    errors = []
    for obj in (_user(32), dict(_user(40, 9), id="77777777")):
        try:
            us.set(obj)
        except ValueError as e:
            errors.append(str(e))
    size = os.stat("/flash/users.jsonl")[6]
    os.umount("/flash")
    return {"users": len(us), "errors": errors, "file_bytes": size, "after_boot": len(json.loads(_load(dev.data, "/c")[0])) - 2}


def report(result):
    print("RESULT " + json.dumps(result))
