"""Heap figures of the firmware on the MicroPython unix port, beside the board's heap they must fit.

    tools/bench/heap.py [--micropython-src DIR] [--profiles bench,core,full] [--duration 60] [--jobs 3]

Profiles (the firmware as an installer configures it, on the unix_sim board with the heap, socket and TLS figures
of the board the profile targets: esp32_devkit for bench and core, unix_sim's own for full):
  bench  the documented defaults: the local box and the SunSpec TCP server (Power Brain map off);
  core   the local box, SunSpec TCP, the Power Brain map (TCP), the MQTT API and get/dev_info on a broker
         (mosquitto on a free loopback port), a pushed grid meter;
  full   every server on (SunSpec, Power Brain map, OMCCI map, MQTT API, dev_info, log, ta_log, ctl, Home
         Assistant discovery) and 25 wallboxes and 25 meters: the local box, 24 pushed wallboxes, 25 pushed
         meters, all fed over MQTT set/.
Variants: the venv's 64-bit binary running the .mpy files a deploy ships; and, with --micropython-src, the
unix port built in 32-bit mode (the ESP32's word size) from that tree, once running the same .mpy files and
once with the firmware frozen into it (boards/manifest_unix.py, as `make firmware` builds it; both builds are
reused when up to date, under build/unix32/).

For each profile and variant it prints:
  boot      live heap after boot: the loop settled (3 s, full 8 s), then gc.collect() (the control socket's
            "heap" op: the status view's heap figures without the rest of the status);
  low live  the lowest free heap over a run of --duration s of traffic (Modbus reads on every server, MQTT
            publishes both ways, a charging session every 30 s through the control socket's `set_adc cp`),
            sampled after gc.collect() every 2 s, with -X heapsize at the board's heap;
  low raw   the firmware's own lowest gc.mem_free() over the same run (sampled every second without a
            collection, so it counts garbage not yet collected: a floor, not headroom);
  min heap  the smallest -X heapsize that boots and runs --probe s of the same traffic without MemoryError
            (bisected to 2 KB or 1 %).
A run that fails says how (MemoryError at boot, ...): figures that fall short are printed as they are.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
sys.path.insert(0, os.path.join(ROOT, "host_tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from firmware_proc import Firmware, free_port, free_ports  # noqa: E402
import deploy  # noqa: E402

KB = 1024
R = "cfos_mqtt"
# The GC heap the profile has to fit. esp32_devkit: an ESP32 without PSRAM under MicroPython 1.28 grows its heap
# once, to about 112 KB (MicroPython PR #13219, issue #14421). The full profile is for PSRAM boards: a WROVER-class
# ESP32 with 4 MB of PSRAM gives MicroPython a GC heap of about 4 MB (an estimate, not measured here).
BASELINE = {"bench": ("esp32_devkit", 112 * KB), "core": ("esp32_devkit", 112 * KB),
            "full": ("PSRAM board, ~4 MB est.", 4096 * KB)}
# The figures of the board a profile targets: the Modbus TCP servers size their client slots from what the
# board's sockets leave (config/schema.py socket_plan), and the log ring and the MQTT receive buffer follow its
# heap_kb, so measuring core on unix_sim's 64 sockets and 2 MB would count what an esp32_devkit never holds.
# The unix board file gets the target board's heap_kb, sockets and tls_sessions.
# full keeps unix_sim's: every server of the full profile together needs more sockets than a PSRAM board's 10.
TARGET_BOARD = {"bench": "esp32_devkit", "core": "esp32_devkit", "full": "unix_sim"}
BOOT_HEAP = "8M"  # for the boot figure: large enough for every variant, so it measures and never fails


def board_file(profile, tmp):
    """unix_sim with the heap, socket and TLS figures of the profile's target board: -> path of the board file."""
    with open(os.path.join(ROOT, "boards", "unix_sim.json")) as f:
        board = json.load(f)
    with open(os.path.join(ROOT, "boards", TARGET_BOARD[profile] + ".json")) as f:
        target = json.load(f)
    board["name"] = "unix_sim as %s" % target["name"]
    for k in ("heap_kb", "sockets", "tls_sessions"):  # heap_kb: the firmware sizes its log ring and MQTT buffer
        board[k] = target[k]
    path = os.path.join(tmp, "board.json")
    with open(path, "w") as f:
        json.dump(board, f)
    return path


def profile_config(profile, broker_port=None):
    """-> (config.json for the profile, {server: port}). bench needs no broker; core and full need broker_port."""
    sunspec = free_port()
    if profile == "bench":
        return {"modbus_tcp_port": sunspec, "pb_tcp_port": 0}, {"sunspec": sunspec}
    pb = free_ports(3)
    url = "mqtt://127.0.0.1:%d" % broker_port
    cfg = {"modbus_tcp_port": sunspec, "pb_tcp_port": pb, "mqtt_enabled": True, "mqtt_url": url,
           "mqtt_api_url": "mqtt", "mqtt_dev_info_url": "mqtt", "mqtt_publish_s": 1, "max_total_current": 32000}
    local = {"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "name": "Carport",
             "publish_mqtt": True, "publish_modbus": True}
    ports = {"sunspec": sunspec, "pb": pb}
    if profile == "core":
        cfg["devices"] = [local, {"dev_id": "M1", "driver": "http_input", "address": "mqtt", "role": 3,
                                  "publish_mqtt": True}]
        return cfg, ports
    assert profile == "full", profile
    omcci = free_port()
    ports["omcci"] = omcci
    devs = [local]
    for i in range(2, 26):
        devs.append({"dev_id": "E%d" % i, "driver": "http_input", "address": "mqtt", "name": "Parking bay %d" % i,
                     "min_charging_cur": 6000, "max_charging_cur": 16000, "prio": 1 + i % 10,
                     "publish_mqtt": True, "publish_modbus": True})
    for i in range(1, 26):
        devs.append({"dev_id": "M%d" % i, "driver": "http_input", "address": "mqtt", "name": "Sub-meter %d" % i,
                     "role": 3 if i == 1 else 0, "publish_mqtt": True, "publish_modbus": True})
    cfg.update({"omcci_tcp_port": omcci, "mqtt_log_url": "mqtt", "mqtt_ta_log_url": "mqtt", "mqtt_ctl_enabled": True,
                "mqtt_ha_discovery": True, "max_total_current": 250000, "devices": devs})
    return cfg, ports


class Broker:
    """mosquitto for one run, as the integration tests start it (host_tests/integration/mqtt_peers.py)."""

    def __init__(self):
        from mqtt_peers import Mosquitto
        self.m = Mosquitto().start()
        self.port = self.m.port

    def close(self):
        self.m.close()


class Traffic:
    """What a site does to the firmware, from one thread: Modbus reads, MQTT pushes and API queries, a charging
    session every 30 s, and a status with gc.collect() every 2 s (the live heap samples)."""

    def __init__(self, fw, profile, ports, broker_port):
        self.fw, self.profile, self.ports, self.broker_port = fw, profile, ports, broker_port
        self.samples = []  # free heap after gc.collect()
        self.counts = {"modbus": 0, "modbus_err": 0, "mqtt_pub": 0, "api_res": 0, "sessions": 0}
        self.error = None

    def _mqtt(self):
        if not self.broker_port:
            return None
        import paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

        def on_message(cl, u, m):
            self.counts["api_res"] += 1
        c.on_message = on_message
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(R + "/api_res", 0)
        c.connect("127.0.0.1", self.broker_port, 30)
        c.loop_start()
        return c

    def _modbus(self, clients):
        from pymodbus.client import ModbusTcpClient
        reads = [("sunspec", 40000, 70, 1)]  # SunSpec ID
        if "pb" in self.ports:  # core and full: ID+1 has the devices that publish to Modbus; the Power Brain map
            reads += [("sunspec", 40000, 4, 2), ("pb", 8000, 2, 1), ("pb", 8092, 4, 1)]
        if "omcci" in self.ports:
            reads.append(("omcci", 100, 10, 1))
        for name, addr, count, unit in reads:
            c = clients.get(name)
            if c is None:
                c = clients[name] = ModbusTcpClient("127.0.0.1", port=self.ports[name], timeout=2, retries=0)
            try:
                if not c.connected:
                    c.connect()
                r = c.read_holding_registers(addr, count=count, device_id=unit)
                self.counts["modbus" if not r.isError() else "modbus_err"] += 1
            except Exception:
                self.counts["modbus_err"] += 1
                c.close()

    def _push(self, mq, t):
        grid = 4000 + int(t) % 7 * 500
        msgs = [("set/M1", {"current": [grid, grid, grid], "voltage": [230, 230, 230], "import_wh": int(t)})]
        if self.profile == "full":
            for i in range(2, 26):
                msgs.append(("set/M%d" % i, {"power_w": 1000 + i, "import_wh": 1000 * i + int(t)}))
                msgs.append(("set/E%d" % i, {"state": 3 if (i + int(t) // 10) % 3 else 2,
                                              "current": [6000, 6000, 6000], "max_charging_current": 16000}))
        for topic, body in msgs:
            mq.publish("%s/%s" % (R, topic), json.dumps(body), qos=0)
            self.counts["mqtt_pub"] += 1

    @staticmethod
    def _cp_mv(phase):
        # one session per 30 s: plugged in (B), charging (C) for 20 s, back to B, unplugged (A)
        return 9000 if phase < 2 else 6000 if phase < 22 else 9000 if phase < 25 else 12000

    def run(self, seconds):
        mq = self._mqtt()
        clients = {}
        t0 = time.monotonic()
        next_push = next_api = next_status = t0
        mv = None
        try:
            while True:
                now = time.monotonic()
                t = now - t0
                if t >= seconds or self.fw.proc.poll() is not None:
                    break
                want = self._cp_mv(t % 30)
                if want != mv:
                    self.fw.ctl("set_adc", name="cp", mv=want)
                    if want == 6000:
                        self.counts["sessions"] += 1
                    mv = want
                self._modbus(clients)
                if mq is not None and now >= next_push:
                    self._push(mq, t)
                    next_push += 1.0
                if mq is not None and now >= next_api:
                    mq.publish(R + "/api/cmd=get_dev_info", "", qos=0)
                    self.counts["mqtt_pub"] += 1
                    next_api += 2.0
                if now >= next_status:
                    self.samples.append(self.fw.ctl("heap", gc=True)["free"])
                    next_status += 2.0
                time.sleep(0.25)
            if self.fw.proc.poll() is None:
                self.samples.append(self.fw.ctl("heap", gc=True)["free"])
        except Exception as e:  # the firmware died or stopped answering: the caller reads its output
            self.error = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        finally:
            for c in clients.values():
                c.close()
            if mq is not None:
                mq.loop_stop()
                mq.disconnect()


def failure(fw, traffic=None):
    """-> None when the firmware ran clean, else a short reason."""
    out = fw.read_output()
    if "MemoryError" in out or "memory allocation failed" in out:
        return "MemoryError"
    if fw.proc.poll() is not None:
        return "exited %s" % fw.proc.returncode
    if traffic is not None and traffic.error:
        return traffic.error
    return None


class Variant:
    def __init__(self, name, binary, main):
        self.name, self.binary, self.main = name, binary, main


SETTLE_S = {"bench": 3.0, "core": 3.0, "full": 8.0}  # full: 50 devices and their discovery topics come up first


def boot(variant, profile, heap, seconds, settle=None):
    """Boot with -X heapsize=heap, settle, run `seconds` of traffic (0: none).
    -> dict(ok, why, boot (status heap after gc.collect), traffic)"""
    broker = Broker() if profile != "bench" else None
    tmp = tempfile.mkdtemp(prefix="lp-heap-")
    try:
        cfg, ports = profile_config(profile, broker.port if broker else None)
        # the virtual board's event record (a test hook, hal/unix.py) is off: the ESP32 HAL keeps none
        fw = Firmware(board=board_file(profile, tmp), config=cfg, fs_dir=tmp, main=variant.main,
                      env={"LOADPILOT_VB_EVENTS": "0"}, binary=variant.binary,
                      mp_args=["-X", "heapsize=%s" % heap])
        try:
            fw.start(timeout=20)
        except RuntimeError as e:
            why = "MemoryError" if "MemoryError" in str(e) else str(e).splitlines()[0]
            return {"ok": False, "why": why + " at boot"}
        try:
            time.sleep(SETTLE_S[profile] if settle is None else settle)
            if failure(fw):
                return {"ok": False, "why": failure(fw) + " at boot"}
            try:  # the heap figures alone: a full status is 2 KB of JSON the firmware would build at every sample
                st = {"heap": fw.ctl("heap", gc=True)}
                if not seconds:
                    st["tasks"] = fw.ctl("status")["tasks"]
            except (RuntimeError, OSError) as e:
                time.sleep(0.5)
                return {"ok": False, "why": (failure(fw) or "control socket: %s" % str(e).splitlines()[0])
                        + " at boot"}
            traffic = None
            if seconds:
                traffic = Traffic(fw, profile, ports, broker.port if broker else None)
                traffic.run(seconds)
                if traffic.error:
                    time.sleep(0.5)  # the firmware's last words (a MemoryError traceback) reach its output
            why = failure(fw, traffic)
            final = None
            if not why:
                try:
                    final = {"heap": fw.ctl("heap")}
                except (RuntimeError, OSError) as e:
                    time.sleep(0.5)
                    why = failure(fw) or "control socket: %s" % str(e).splitlines()[0]
            return {"ok": why is None, "why": why, "boot": st["heap"], "tasks": [t["name"] for t in st.get("tasks", ())],
                    "traffic": traffic, "final": final}
        finally:
            fw.stop()
    finally:
        if broker:
            broker.close()
        shutil.rmtree(tmp, ignore_errors=True)


def smallest_heap(variant, profile, live, probe_s):
    """Bisect -X heapsize (bytes) between the live heap (cannot run) and a size that runs probe_s of traffic."""
    lo, hi = live, int(live * 1.3) + 8 * KB
    while not boot(variant, profile, "%dK" % (hi // KB), probe_s)["ok"]:
        lo, hi = hi, int(hi * 1.3)
        if hi > 64 * 1024 * KB:
            return None
    while hi - lo > max(2 * KB, hi // 100):
        mid = (lo + hi) // 2 // KB * KB
        if mid <= lo:
            break
        if boot(variant, profile, "%dK" % (mid // KB), probe_s)["ok"]:
            hi = mid
        else:
            lo = mid
    return hi


def measure(variant, profile, duration, probe_s, bisect=True):
    try:
        return _measure(variant, profile, duration, probe_s, bisect)
    except Exception as e:  # one measurement that breaks must not lose the others
        return {"variant": variant.name, "profile": profile, "boot_err": "%s: %s" % (type(e).__name__, e)}


def _measure(variant, profile, duration, probe_s, bisect=True):
    base = BASELINE[profile][1]
    b = boot(variant, profile, BOOT_HEAP, 0)
    res = {"variant": variant.name, "profile": profile, "baseline": base}
    if not b["ok"]:
        res["boot_err"] = b["why"]
        return res
    res["boot"] = b["boot"]["alloc"]
    res["tasks"] = b["tasks"]
    run = boot(variant, profile, "%dK" % (base // KB), duration)
    if run.get("traffic") is not None:
        tr = run["traffic"]
        res["counts"] = tr.counts
        if tr.samples:
            res["low_live"] = min(tr.samples + [run["boot"]["free"]])
    if run["ok"]:
        res["low_raw"] = run["final"]["heap"]["min_free"]
    else:
        res["run_err"] = run["why"]
    if bisect:
        res["min_heap"] = smallest_heap(variant, profile, res["boot"], probe_s)
    return res


def mpy_tree():
    """The .mpy files `make deploy` ships, in a temporary tree with main.py beside them."""
    tree = tempfile.mkdtemp(prefix="loadpilot-mpy-")
    for remote, local in deploy.compile_firmware(tree):
        if remote == "main.py":
            shutil.copy(local, os.path.join(tree, "main.py"))
    return tree


def kb(n):
    return "%6.1f KB" % (n / KB)


def pct(n, base):
    return "%s %4d%%" % (kb(n), round(100.0 * n / base))


def report(results, profiles, variants, duration, probe_s):
    print("heap figures, unix_sim board; baseline = the board's GC heap the profile has to fit")
    print("  runs: %d s of traffic at -X heapsize=<baseline>; min heap: bisected, %d s probes" % (duration, probe_s))
    for profile in profiles:
        board, base = BASELINE[profile]
        print("\n%s profile   (baseline: %s, %s)" % (profile, board, kb(base).strip()))
        print("  %-26s %16s %12s %12s %16s" % ("variant", "boot", "low live", "low raw", "min heap"))
        for v in variants:
            r = results.get((profile, v.name))
            if r is None:
                continue
            if "boot_err" in r:
                print("  %-26s %s" % (v.name, r["boot_err"]))
                continue
            low = kb(r["low_live"]) if "low_live" in r and "run_err" not in r else r.get("run_err", "-")
            raw = kb(r["low_raw"]) if "low_raw" in r else "-"
            mh = pct(r["min_heap"], base) if r.get("min_heap") else ("> 64 MB" if "min_heap" in r else "-")
            print("  %-26s %16s %12s %12s %16s" % (v.name, pct(r["boot"], base), low, raw, mh))
        r = results.get((profile, variants[-1].name))
        if r and r.get("counts"):
            c = r["counts"]
            print("  traffic (%s): %d Modbus reads (%d failed), %d MQTT publishes, %d api answers, %d sessions"
                  % (variants[-1].name, c["modbus"], c["modbus_err"], c["mqtt_pub"], c["api_res"], c["sessions"]))
    print("\n  boot, min heap: KB and % of the baseline (over 100 % does not fit)")
    print("  boot: live heap after boot and gc.collect()")
    print("  low live: lowest free heap after gc.collect() during the run; low raw: the firmware's lowest")
    print("  gc.mem_free() (garbage included); a run that failed says why.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--micropython-src", help="MicroPython source tree: also build and measure the 32-bit unix port")
    ap.add_argument("--profiles", default="bench,core,full")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of traffic per run (>= 60 for the record)")
    ap.add_argument("--probe", type=float, default=15.0, help="seconds of traffic per heap-size probe")
    ap.add_argument("--jobs", type=int, default=3, help="profile/variant measurements run side by side")
    ap.add_argument("--no-bisect", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    profiles = [p for p in a.profiles.split(",") if p]
    tree = mpy_tree()
    variants = [Variant("64-bit venv binary, .mpy", None, os.path.join(tree, "main.py"))]
    if a.micropython_src:
        import firmware as fwbuild
        try:
            src = fwbuild.check_source(a.micropython_src)
            fwbuild.check_multilib()
            fwbuild.mpy_cross_build(src, quiet=True)
            plain = fwbuild.build_unix32(src, frozen=False, quiet=True)
            frozen = fwbuild.build_unix32(src, frozen=True, quiet=True)
        except fwbuild.BuildError as e:
            sys.exit("heap.py: %s" % e)
        variants.append(Variant("32-bit, .mpy", plain, os.path.join(tree, "main.py")))
        variants.append(Variant("32-bit, frozen", frozen, ["-m", "main"]))
    try:
        jobs = [(p, v) for p in profiles for v in variants]
        results = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as ex:
            futs = {ex.submit(measure, v, p, a.duration, a.probe, not a.no_bisect): (p, v.name) for p, v in jobs}
            for f in concurrent.futures.as_completed(futs):
                results[futs[f]] = f.result()
                print("  done: %s / %s" % futs[f], file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    report(results, profiles, variants, a.duration, a.probe)
    if not a.micropython_src:
        print("\nThese are the 64-bit figures only, and no bound on the board: measured, the core profile's live heap")
        print("here is about 1.5x the 32-bit .mpy figure and 4x the 32-bit frozen one (docs/firmware.md). Pass")
        print("--micropython-src DIR (a MicroPython source tree) for the 32-bit .mpy and frozen figures.")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"%s/%s" % k: {kk: vv for kk, vv in r.items() if kk != "traffic"} for k, r in results.items()},
                      f, indent=1)


if __name__ == "__main__":
    main()
