# Runs on the MicroPython binary (not a pytest module): the OCPP transaction outbox (ocpp/outbox.py) on littlefs
# over the power-cuttable flash model (hal/flashdev.py). A scenario records Starts and Stops and delivers them to a
# model backend, online and offline, across a compaction; the power is cut at every erase/program; after each cut
# the outbox boots from the chip and delivers what is left. Used by test_outbox_flash.py; prints "RESULT <json>".
import os

from flash_sim_mp import BLOCK_SIZE, BLOCKS, mount, quiet_log, report
from loadpilot.hal.flashdev import FlashBlockDevice, PowerCut
from loadpilot.ocpp.outbox import CAP, K_START, Outbox

BASE_TX = 31  # finished online transactions already in the file: 124 records, so the scenario compacts


class _CutDev(FlashBlockDevice):
    def _tick(self):
        cut = FlashBlockDevice._tick(self)
        if cut:
            self.detached = True  # the CPU stops with the power: nothing after it changes the chip
        return cut


class Backend:
    """What the backend received: [(kind, seq, txid named)], and the transaction ids it gave per session."""

    def __init__(self):
        self.got = []
        self.txids = {}
        self.next = 100
        self.inflight = None  # the message whose answer is being recorded
        self.cut_inflight = None

    def deliver(self, ob):
        """Send the outbox's head and record its answer. -> the message key."""
        kind, t = ob.head()
        key = (kind, t.seq)
        if kind == K_START:
            self.next += 1
            self.txids.setdefault(t.seq, []).append(self.next)
            self.got.append((kind, t.seq, None))
            self.inflight = key
            ob.started(t, self.next, 0)
        else:
            self.got.append((kind, t.seq, t.txid))
            self.inflight = key
            ob.stopped(t)
        self.inflight = None
        return key


# the scenario: (op, seq); "start"/"stop" record, "send" delivers the head (only while online)
SCENARIO = (("start", 101), ("send", 0), ("stop", 101), ("send", 0),          # online
            ("start", 102), ("stop", 102), ("start", 103), ("stop", 103),      # offline: two sessions
            ("send", 0), ("send", 0), ("send", 0), ("send", 0),                # reconnect: delivered in order
            ("start", 104), ("send", 0), ("stop", 104))                        # open at the end, Stop unsent


def _run(dev, point, be, done, cut_after=None):
    """The scenario on a mounted chip; done: the record operations that returned, in order."""
    if cut_after is not None:
        dev.cut_power_after(cut_after, True)
    try:
        ob = Outbox(point, quiet_log())
        txs = {}
        for op, seq in SCENARIO:
            if op == "start":
                txs[seq] = ob.start(seq, 1, "TAG%d" % seq, seq * 10, 1790000000 + seq)
                done.append((K_START, seq))
            elif op == "stop":
                ob.stop(txs[seq], seq * 10 + 5, 1790000100 + seq, 1)
                done.append((2, seq))
            else:
                be.deliver(ob)
        return ob
    except (PowerCut, OSError):
        return None


def _base():
    dev = FlashBlockDevice(BLOCKS, BLOCK_SIZE)
    mount(dev, "/flash", mkfs=True)
    ob = Outbox("/flash", quiet_log())
    be = Backend()
    for i in range(1, BASE_TX + 1):
        ob.stop(ob.start(i, 1, "OLD", i, i), i, i, 1)
        be.deliver(ob)
        be.deliver(ob)
    assert ob.records == 4 * BASE_TX and ob.records + 8 > CAP
    os.umount("/flash")
    return bytes(dev.data)


def _check(where, be, done, data, failures):
    """Boot on the chip after the cut, deliver what is left, and check the backend's view."""
    d = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(data))
    mount(d, "/chk")
    try:
        ob = Outbox("/chk", quiet_log())
        if ob.bad:
            failures.append("%s: %d damaged records" % (where, ob.bad))
        while ob.head() is not None:
            be.deliver(ob)
        again = Outbox("/chk", quiet_log())  # a second boot: nothing left to send, the open one still known
        left = [(t.seq, t.txid, t.stop) for t in again.txs]
        if again.head() is not None:
            failures.append("%s: a second boot found more to send" % where)
        if "outbox.new" in os.listdir("/chk/ocpp"):
            failures.append("%s: outbox.new left" % where)
    finally:
        os.umount("/chk")
    counts = {}
    order = []
    for kind, seq, txid in be.got:
        key = (kind, seq)
        counts[key] = counts.get(key, 0) + 1
        if key not in order:
            order.append(key)
        if kind != K_START and txid not in be.txids.get(seq, ()):
            failures.append("%s: Stop of %d names transaction %r, given %r" % (where, seq, txid, be.txids.get(seq)))
    for key in done:  # every record that returned was delivered
        if key not in counts:
            failures.append("%s: %r recorded, never delivered" % (where, key))
    for key, n in counts.items():  # once; twice only for the answer being recorded at the cut (stated window)
        if n > 1 and not (n == 2 and key == be.cut_inflight):
            failures.append("%s: %r delivered %d times" % (where, key, n))
    scen = [(K_START if op == "start" else 2, seq) for op, seq in SCENARIO if op != "send"]
    if [k for k in order if k[1] > BASE_TX] != [k for k in scen if k in order]:
        failures.append("%s: out of order %r" % (where, order))
    return left


def power_cut():
    base = _base()
    d = FlashBlockDevice(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
    mount(d, "/cut")
    p0, e0 = d.programs, d.total_erases()
    ob = _run(d, "/cut", Backend(), [])
    ops = d.programs - p0 + d.total_erases() - e0
    compactions = ob.compactions
    os.umount("/cut")
    failures = []
    dups = 0
    for k in range(ops + 1):
        d = _CutDev(BLOCKS, BLOCK_SIZE, backing=bytearray(base))
        mount(d, "/cut")
        be = Backend()
        be.inflight = None
        done = []
        _run(d, "/cut", be, done, k)
        be.cut_inflight = be.inflight
        d.detach()
        try:
            os.umount("/cut")
        except OSError:
            pass
        where = "cut %d" % k
        try:
            _check(where, be, done, d.data, failures)
        except Exception as e:
            failures.append("%s: %r" % (where, e))
        if be.cut_inflight is not None and len([g for g in be.got if (g[0], g[1]) == be.cut_inflight]) == 2:
            dups += 1
    return {"ops": ops, "cut_points": ops + 1, "compactions": compactions, "failures": failures,
            "resent_in_window": dups}


if __name__ == "__main__":
    report(power_cut())
