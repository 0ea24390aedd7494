# Runs on the MicroPython binary (not a pytest module): the config store on littlefs over the counting,
# power-cuttable flash model. Used by test_config_flash.py and tools/bench/flash_wear.py; each entry point
# prints one line "RESULT <json>".
import json
import os

from loadpilot.config.store import Store
from loadpilot.hal.flashdev import FlashBlockDevice
from loadpilot.log import Log

BLOCKS = 64
BLOCK_SIZE = 4096


class Clock:
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms


def quiet_log():
    return Log(size=32, console_level=100)


def mount(dev, point, mkfs=False):
    if mkfs:
        os.VfsLfs2.mkfs(dev)
    os.mount(os.VfsLfs2(dev), point)


def realistic(n):
    """A configuration of realistic size: 10 wallboxes, 4 meters, MQTT with credentials."""
    devs = []
    for i in range(1, 11):
        devs.append({"dev_id": "E%d" % i, "driver": "evse_powerbrain", "address": "COM1,19200,8,n,1",
                     "id": i + 1, "name": "Box %d" % i, "min_charging_cur": 6000,
                     "max_charging_cur": 16000 + 1000 * (n % 3), "prio": 1 + i % 3, "publish_modbus": True})
    for i in range(1, 5):
        devs.append({"dev_id": "M%d" % i, "driver": "meter_sdm630", "address": "192.168.1.%d:502" % (20 + i),
                     "id": 1, "role": i % 4, "publish_mqtt": True})
    return {"title": "Garage %d" % n, "max_total_current": 32000 + n, "reserve_current": 1000 * (n % 5),
            "mqtt_enabled": True, "mqtt_url": "mqtt://lp:s3cret-%d@broker.lan:1883" % n,
            "admin_pwd": "admin-pw-%d" % n, "modbus_rtu_port": "COM1,19200,8,n,1", "devices": devs}


def wear_day(mode, seconds=86400, delay_s=150):
    """One parameter (or only volatile values) set every second for `seconds` simulated seconds."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    clock = Clock()
    store = Store("/flash", quiet_log(), clock)
    store.set_many(realistic(0))
    store.set("commit_delay_s", delay_s)
    store.flush()
    e0 = list(dev.erases)
    p0 = dev.programs
    s0 = store.saves
    v = store.volatile
    for t in range(seconds):
        if mode == "persistent":
            store.set("max_total_current", 16000 + t % 16000)  # a new value every second
        elif mode == "unchanged":
            store.set("max_total_current", 32000)
        v.set("max_total_cur_prc", t % 101)  # the grid operator's percent, every second, in all modes
        v.set("cm_flag%d" % (1 + t % 32), t & 1)
        v.set("cm_var.surplus", t % 7000)
        v.set("setpoint.E1.cur", 6000 + t % 10000)
        clock.ms += 1000
        store.poll()
    erases = [dev.erases[i] - e0[i] for i in range(BLOCKS)]
    size = os.stat("/flash/lpconfig.a")[6]
    os.umount("/flash")
    return {"mode": mode, "seconds": seconds, "saves": store.saves - s0, "erases": sum(erases),
            "erases_max_block": max(erases), "programs": dev.programs - p0, "config_bytes": size,
            "bar_saves": seconds // 150, "delay_s": delay_s}


def _load(data, point):
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(data))
    mount(dev, point)
    try:
        return Store(point, quiet_log(), Clock())._values
    finally:
        os.umount(point)


def power_cut(saves=4):
    """Cut power at every erase/program of several saves (partial and clean cuts); after each cut, boot
    from a copy of the flash and check the configuration is exactly the old or the new one."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    store = Store("/flash", quiet_log(), Clock())
    store.set_many(realistic(0))
    store.flush()
    os.umount("/flash")
    points = 0
    outcomes = {"old": 0, "new": 0}
    failures = []
    ops_per_save = []
    for n in range(1, saves + 1):
        base = bytes(dev.data)
        old = _load(base, "/cut")
        # the save under test, once without a cut, to count its flash operations
        d = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
        mount(d, "/cut")
        s = Store("/cut", quiet_log(), Clock())
        s.set_many(realistic(n))
        s.flush()
        os.umount("/cut")
        ops = d.programs + d.total_erases()
        ops_per_save.append(ops)
        new = _load(d.data, "/cut")
        if new == old:
            failures.append("save %d changed nothing" % n)
        for partial in (True, False):
            for k in range(ops + 1):  # k == ops: power lost just after the save's last operation
                d = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
                mount(d, "/cut")
                s = Store("/cut", quiet_log(), Clock())
                s.set_many(realistic(n))
                d.cut_power_after(k, partial)
                wrote = s.flush()
                d.detach()  # before anything allocates: see FlashBlockDevice.detach
                try:
                    os.umount("/cut")
                except OSError:
                    pass
                points += 1
                try:
                    got = _load(d.data, "/cut")  # the next boot, on what the chip holds
                except Exception as e:  # an unmountable chip is a failure too
                    failures.append("save %d cut %d partial %s: boot failed %r" % (n, k, partial, e))
                    continue
                if got == old:
                    outcomes["old"] += 1
                elif got == new:
                    outcomes["new"] += 1
                else:
                    diff = [key for key in got if got[key] != new[key] and got[key] != old[key]]
                    failures.append("save %d cut %d partial %s: mixed/other config, keys %s"
                                    % (n, k, partial, diff))
                if wrote and got != new:
                    failures.append("save %d cut %d: flush reported success but boot saw old" % (n, k))
        # commit this save on the real chip and go on from there
        dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
        mount(dev, "/flash")
        s = Store("/flash", quiet_log(), Clock())
        s.set_many(realistic(n))
        s.flush()
        os.umount("/flash")
    return {"cut_points": points, "ops_per_save": ops_per_save, "outcomes": outcomes, "failures": failures}


def _boot_lines(point):
    log = Log(size=64, console_level=100)
    return Store(point, log, Clock()), [l[3] for l in log.lines()]


def _put(path, data):
    with open(path, "wb") as fh:
        fh.write(data)


def _get(path):
    with open(path, "rb") as fh:
        return fh.read()


def damage():
    """Two saves on littlefs (lpconfig.a seq 1, lpconfig.b seq 2); then every bit of lpconfig.b's header
    flipped in turn, and lpconfig.b cut at every 64-byte step. After each: boot (it must see lpconfig.a's
    configuration and log lpconfig.b's damage), save a change (it must go over lpconfig.b, leaving lpconfig.a
    as it was) and boot again (it must see the change)."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    s = Store("/flash", quiet_log(), Clock())
    s.set_many(realistic(1))
    s.flush()
    intact = dict(s._values)
    s.set_many(realistic(2))
    s.flush()
    a, b = "/flash/lpconfig.a", "/flash/lpconfig.b"
    a_data, b_data = _get(a), _get(b)
    header = b_data.index(b"\n") + 1
    cases = [("flip", i) for i in range(header * 8)] + [("cut", n) for n in range(0, len(b_data), 64)]
    reasons = {}
    failures = []
    for kind, i in cases:
        _put(a, a_data)
        if kind == "flip":
            d = bytearray(b_data)
            d[i // 8] ^= 1 << (i % 8)
            _put(b, d)
        else:
            _put(b, b_data[:i])
        st, lines = _boot_lines("/flash")
        what = "%s %d" % (kind, i)
        if st._values != intact or st.seq != 1:
            failures.append("%s: boot did not see the last intact configuration (seq %d)" % (what, st.seq))
            continue
        damage_lines = [l for l in lines if l.startswith("lpconfig.b ignored: ")]
        if len(damage_lines) != 1:
            failures.append("%s: no log line naming the damage: %r" % (what, lines))
            continue
        why = damage_lines[0][len("lpconfig.b ignored: "):].split(";")[0].split(" (")[0].split(" '")[0]
        why = "".join("N" if c.isdigit() else c for c in why).replace("NN", "N").replace("NN", "N")
        reasons[why] = reasons.get(why, 0) + 1
        st.set("title", "after %s" % what)
        st.flush()
        if _get(a) != a_data:
            failures.append("%s: the save overwrote the intact slot" % what)
        again, _ = _boot_lines("/flash")
        if again.get("title") != "after %s" % what or again.seq != 2:
            failures.append("%s: the save after the fallback was not seen at the next boot" % what)
        if sorted(os.listdir("/flash")) != ["lpconfig.a", "lpconfig.b"]:
            failures.append("%s: files %r" % (what, os.listdir("/flash")))
    os.umount("/flash")
    return {"header_bytes": header, "slot_bytes": len(b_data), "flips": header * 8,
            "cuts": len(cases) - header * 8, "reasons": reasons, "failures": failures}


def report(result):
    print("RESULT " + json.dumps(result))
