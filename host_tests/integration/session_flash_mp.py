# Runs on the MicroPython binary (not a pytest module): the session journal on littlefs over the counting,
# power-cuttable flash model (hal/flashdev.py), driven by the real tracker over a scripted Site. Used by
# test_session_flash.py and tools/bench/flash_wear.py; each entry point prints one line "RESULT <json>".
import os

import flash_sim_mp
from flash_sim_mp import BLOCKS, BLOCK_SIZE, mount, quiet_log
from loadpilot.codes import STOP_EV_DISCONNECTED, STOP_POWER_LOSS, STOP_REASONS
from loadpilot.hal.flashdev import FlashBlockDevice
from loadpilot.sessions.history import records, view
from loadpilot.sessions.journal import Journal, Session
from loadpilot.sessions.tracker import SessionTracker
from loadpilot.site import Site

report = flash_sim_mp.report
WALL0 = 1790000000  # a set clock (2026)


class Clock:
    def __init__(self):
        self.s = 0

    def wall(self):
        return WALL0 + self.s


def _site(n):
    site = Site()
    site.configure(["E%d" % (i + 1) for i in range(n)] + ["M1"])
    for i in range(n):
        d = site.device("E%d" % (i + 1))
        d.status = 1
        d.reading.updated_ms = 0
    return site


# ---- wear: a day of sessions

def wear_day(boxes=4, every_s=None, seconds=86400):
    """`boxes` wallboxes, each with two sessions a day: plugged in 5 h, charging 3 h at 11 kW (3 Wh/s), then
    full; polled once a second. every_s: the baseline's checkpoint period instead of the tracker's rule."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    clock = Clock()
    site = _site(boxes)
    j = Journal("/flash", quiet_log(), wall=clock.wall)
    t = SessionTracker(site, j, quiet_log(), wall=clock.wall)
    if every_s is not None:
        t.every_wh, t.every_s, t.idle_s = 1 << 30, every_s, every_s
    e0 = list(dev.erases)
    p0 = dev.programs
    b0 = dev.program_bytes
    for sec in range(seconds):
        clock.s = sec
        for i in range(boxes):
            d = site.device("E%d" % (i + 1))
            lt = (sec - i * 3600) % 43200  # box i: sessions from hour 1+i and 13+i, plugged 5 h, charging 3 h
            if sec >= i * 3600 and 3600 <= lt < 4 * 3600:
                d.status = 3
                d.reading.import_wh += 3
                d.alloc_ma = 16000
            elif sec >= i * 3600 and 3600 <= lt < 6 * 3600:
                d.status = 2
                d.alloc_ma = 0
            else:
                d.status = 1
        t.poll(sec * 1000)
    erases = [dev.erases[i] - e0[i] for i in range(BLOCKS)]
    res = {"boxes": boxes, "seconds": seconds, "sessions": j.appends, "checkpoints": j.checkpoints,
           "erases": sum(erases), "erases_max_block": max(erases), "programs": dev.programs - p0,
           "program_bytes": dev.program_bytes - b0, "every_s": every_s}
    os.umount("/flash")
    return res


# ---- power cuts at every flash operation of sessions' lives

SEG, MIN_SEG, MAX_SEG = 4, 3, 3  # a tiny ring, so the scenario rolls segments over and drops the oldest
BASE_SESSIONS = 10  # segments of 4, 4, 2: the scenario's third close needs a new segment and drops the oldest
STEP_WH = (3, 1)  # Wh per second at E1 (11 kW) and E2


def _journal(point, clock, log=None):
    return Journal(point, log or quiet_log(), wall=clock.wall, seg_records=SEG, min_segments=MIN_SEG,
                   max_segments=MAX_SEG)


def _scenario():
    """(second, what) steps: E1 charges 200 s, E2 plugs in at 50 s, is authorized at 70 s, leaves at 120 s; E1
    leaves at 200 s, and a short third session follows at E1."""
    return ((0, "E1 plug"), (50, "E2 plug"), (70, "E2 auth"), (120, "E2 unplug"), (200, "E1 unplug"),
            (210, "E1 plug"), (230, "E1 unplug"), (240, "end"))


class _CutDev(FlashBlockDevice):
    """The chip, out of the circuit from the operation that loses power: the CPU stops there too, so nothing
    after it may change the chip, and a file object's finalizer run by a later garbage collection (with the
    heap locked) must not allocate (FlashBlockDevice.detach)."""

    def _tick(self):
        cut = FlashBlockDevice._tick(self)
        if cut:
            self.detached = True
        return cut


class _Watch:
    """Wraps a journal's writes: which sessions were durably started/checkpointed/closed before the cut (an
    operation counts only if the power was still on when it returned)."""

    def __init__(self, j, dev):
        self.ckpt = {}    # seq -> meter_end_wh of its last checkpoint that returned
        self.tried = {}   # seq -> meter_end_wh of its last checkpoint attempted
        self.closed = {}  # seq -> (reason, meter_end_wh) of closes that returned
        cp, cl = j.checkpoint, j.close

        def checkpoint(s):
            self.tried[s.seq] = s.meter_end_wh
            cp(s)
            if dev.powered:
                self.ckpt[s.seq] = s.meter_end_wh

        def close(s, reason):
            self.tried[s.seq] = s.meter_end_wh
            cl(s, reason)
            if dev.powered:
                self.closed[s.seq] = (reason, s.meter_end_wh)
        j.checkpoint = checkpoint
        j.close = close


def _run(dev, point, cut=None, partial=True):
    """The scenario on a journal over dev (mounted at point); cut: lose power during that operation."""
    clock = Clock()
    site = _site(2)
    auth = {}
    j = _journal(point, clock)
    t = SessionTracker(site, j, quiet_log(), auth_of=lambda dev_id: auth.get(dev_id), wall=clock.wall)
    w = _Watch(j, dev)
    meter_at = {}  # seq -> true meter at the moment of the cut (for the loss bound)
    if cut is not None:
        dev.cut_power_after(cut, partial)
    steps = _scenario()
    k = 0
    e1, e2 = site.device("E1"), site.device("E2")
    for sec in range(241):
        clock.s = sec
        while k < len(steps) and steps[k][0] == sec:
            what = steps[k][1]
            k += 1
            if what == "E1 plug":
                e1.status = 3
            elif what == "E2 plug":
                e2.status = 3
            elif what == "E2 auth":
                auth["E2"] = ("04A1B2C3", "enter_rfid")
            elif what == "E2 unplug":
                e2.status = 1
            elif what == "E1 unplug":
                e1.status = 1
        for d, step in ((e1, STEP_WH[0]), (e2, STEP_WH[1])):
            if d.status == 3:
                d.reading.import_wh += step
                d.alloc_ma = 16000 if step == 3 else 6000
        for s in t.open.values():
            meter_at[s.seq] = s.meter_end_wh
        t.poll(sec * 1000)
        if not dev.powered:
            break  # the power is off: the CPU stops too
    return w, meter_at


def _records(data, point):
    """Boot on a copy of the chip: -> (recovered seqs, {seq: [records]}, open files left, second boot same?)."""
    d = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(data))
    mount(d, point)
    try:
        j = _journal(point, Clock())
        got = {}
        for s in records(j):
            got.setdefault(s.seq, []).append(_copy(s))
        left = [n for n in os.listdir(point + "/sessions") if n.startswith("o_")]
        again = _journal(point, Clock())  # a second boot: recovery left nothing to do
        same = again.recovered == [] and [s.seq for s in records(again)] == [s.seq for s in records(j)]
        return [s.seq for s in j.recovered], got, left, same
    finally:
        os.umount(point)


def _copy(s):
    c = Session()
    for k in ("seq", "dev_id", "wall", "reason", "method", "start_s", "end_s", "meter_start_wh", "meter_end_wh",
              "peak_ma", "last_ma", "id_tag", "hi_seq"):
        setattr(c, k, getattr(s, k))
    return c


def _base():
    """A chip with BASE_SESSIONS closed sessions (the ring about to drop its oldest segment)."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    clock = Clock()
    site = _site(1)
    t = SessionTracker(site, _journal("/flash", clock), quiet_log(), wall=clock.wall)
    e1 = site.device("E1")
    for i in range(BASE_SESSIONS):
        e1.status = 3
        t.poll(i * 2000)
        e1.reading.import_wh += 10
        e1.status = 1
        t.poll(i * 2000 + 1000)
    os.umount("/flash")
    return bytes(dev.data)


def power_cut():
    """Cut power at every erase/program of the scenario (partial and clean cuts); after each, boot from the chip
    and check: every session whose close returned is there once with its reason and meter; a session that was
    open is there once, as PowerLoss with its last checkpoint's meter (or closed, if the cut came after its
    record), within the loss bound; no open file is left; a second boot finds nothing more to do."""
    base = bytes(_base())
    d = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
    mount(d, "/cut")
    p0, e0 = d.programs, d.total_erases()
    full, _ = _run(d, "/cut")
    ops = d.programs - p0 + d.total_erases() - e0
    os.umount("/cut")
    _, final, _, _ = _records(d.data, "/cut")
    sessions = sorted(s for s in final if s > BASE_SESSIONS)
    kept = sorted(s for s in final if s <= BASE_SESSIONS)  # older sessions the ring still holds at the end
    points = 0
    failures = []
    outcomes = {"power_loss": 0, "closed": 0, "not_started": 0}
    for partial in (True, False):
        for k in range(ops + 1):
            d = _CutDev(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
            mount(d, "/cut")
            w, meter_at = _run(d, "/cut", k, partial)
            d.detach()
            try:
                os.umount("/cut")
            except OSError:
                pass
            points += 1
            where = "cut %d partial %s" % (k, partial)
            try:
                recovered, got, left, same = _records(d.data, "/cut")
            except Exception as e:
                failures.append("%s: boot failed %r" % (where, e))
                continue
            if left:
                failures.append("%s: open files left %r" % (where, left))
            if not same:
                failures.append("%s: the second boot changed the journal" % where)
            for seq, recs in got.items():
                if len(recs) != 1:
                    failures.append("%s: session %d journalled %d times" % (where, seq, len(recs)))
            missing = [seq for seq in kept if seq not in got]
            if missing:
                failures.append("%s: older sessions %r lost" % (where, missing))
            for seq in sessions:
                r = got.get(seq)
                if seq in w.closed:
                    reason, wh = w.closed[seq]
                    if r is None or r[0].reason != reason or r[0].meter_end_wh != wh:
                        failures.append("%s: closed session %d is %r" % (where, seq, r and view(r[0])))
                    else:
                        outcomes["closed"] += 1
                elif seq in w.tried:  # open at the cut (or closing)
                    if r is None:
                        if seq in w.ckpt:
                            failures.append("%s: session %d (checkpointed) lost" % (where, seq))
                        else:
                            outcomes["not_started"] += 1
                        continue
                    s = r[0]
                    lo = w.ckpt.get(seq, s.meter_start_wh)
                    if s.reason not in (STOP_POWER_LOSS, STOP_EV_DISCONNECTED) or not lo <= s.meter_end_wh <= \
                            w.tried[seq]:
                        failures.append("%s: session %d recovered as %s with %d Wh (checkpoint %d, tried %d)"
                                        % (where, seq, STOP_REASONS[s.reason], s.meter_end_wh, lo, w.tried[seq]))
                    elif seq in meter_at and meter_at[seq] - s.meter_end_wh > 100 + STEP_WH[0]:
                        failures.append("%s: session %d lost %d Wh" % (where, seq, meter_at[seq] - s.meter_end_wh))
                    else:
                        outcomes["power_loss" if s.reason == STOP_POWER_LOSS else "closed"] += 1
    return {"cut_points": points, "ops": ops, "sessions": len(sessions), "kept": len(kept), "outcomes": outcomes,
            "checkpoints_full_run": len(full.ckpt), "failures": failures}


# ---- the tracker's steady state allocates nothing

def steady_poll(polls=200):
    """Two wallboxes with open sessions (one charging, one waiting for its car to draw), polled with the heap
    locked: any allocation would raise MemoryError. Then a checkpoint is due and the heap is unlocked."""
    import micropython
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    clock = Clock()
    site = _site(3)
    t = SessionTracker(site, Journal("/flash", quiet_log(), wall=clock.wall), quiet_log(), wall=clock.wall)
    e1, e2 = site.device("E1"), site.device("E2")
    e1.status, e1.alloc_ma = 3, 16000
    e2.status = 2
    now = 0
    t.poll(now)  # both sessions start (and are checkpointed) here
    done = 0
    error = None
    micropython.heap_lock()
    try:
        for i in range(polls):
            now += 250
            e1.reading.import_wh += 1 if i % 8 == 0 else 0  # 0.5 Wh/s: no checkpoint in 50 s
            e1.alloc_ma = 16000 - i % 2 * 1000
            t.poll(now)
            done += 1
    except MemoryError as e:
        error = repr(e)
    finally:
        micropython.heap_unlock()
    res = {"polls": done, "error": error, "open": len(t.open), "checkpoints": t.journal.checkpoints}
    os.umount("/flash")
    return res


# ---- the clock set during a session

def clock_fixup():
    """E1's session starts before the clock is set and ends after; E2's starts and ends before. -> both records."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    wall = [-1]
    site = _site(2)
    t = SessionTracker(site, Journal("/flash", quiet_log(), wall=lambda: wall[0]), quiet_log(),
                       wall=lambda: wall[0])
    e1, e2 = site.device("E1"), site.device("E2")
    ms = 0
    for sec in range(400):  # E1 plugged at 10 s, the clock set at 100 s (to WALL0), E1 unplugged at 300 s
        if sec == 10:
            e1.status = 2
        if sec == 20:
            e2.status = 2
        if sec == 50:
            e2.status = 1
        if sec == 100:
            wall[0] = WALL0
        elif wall[0] > 0:
            wall[0] += 1
        if sec == 300:
            e1.status = 1
        t.poll(ms)
        ms += 1000
    out = [view(s) for s in records(t.journal)]
    os.umount("/flash")
    return {"sessions": out, "wall0": WALL0}


# ---- the ring: at least min_segments, up to max_segments while the oldest are younger than keep_s

def ring():
    """Segments of 2 records, at least 3 and at most 5 segments, keep 1000 s. Sessions closed every 10 s fill
    the ring to 5 segments (all young); 2000 s later the next new segment drops the old ones down to 3."""
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    now = [WALL0]
    j = Journal("/flash", quiet_log(), wall=lambda: now[0], seg_records=2, min_segments=3, max_segments=5,
                keep_s=1000)
    out = []

    def close_one():
        s = Session()
        s.seq = j.next_seq()
        s.dev_id = "E1"
        s.wall = True
        s.start_s = now[0] - 5
        s.end_s = now[0]
        j.close(s, STOP_EV_DISCONNECTED)
        out.append((s.seq, len(j.segments), [x.seq for x in records(j)][0]))

    for i in range(14):
        now[0] += 10
        close_one()
    now[0] += 2000
    for i in range(3):
        close_one()
    again = Journal("/flash", quiet_log(), wall=lambda: now[0], seg_records=2, min_segments=3, max_segments=5,
                    keep_s=1000)
    seqs = [x.seq for x in records(again)]
    os.umount("/flash")
    return {"steps": out, "after_boot": seqs}
