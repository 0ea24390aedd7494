"""MQTT topics benchmark: the whole firmware on the MicroPython unix binary, its SunSpec Modbus TCP server read
in a loop, while the MQTT API topics run against

1. a blackholed broker (accepts TCP, never answers) named by every topic group, and
2. mosquitto, with 25 HTTP-input wallboxes + 8 meters, get/dev_info published every second and a burst of
   set/<dev_id> messages and api requests.

Printed: the firmware's worst loop stall (status loop.worst_ms, measured from after boot) and the Modbus
reads answered, next to the bar from DESIGN.md (a broker must not stall the loop by more than 20 ms), and
the size of one dev_info document with its largest chunk.

3. the heap of one publish round (get/dev_info, get/params, get/<dev_id>, HA discovery), full profile: 25
   wallboxes + 8 meters, HA discovery on (tools/bench/mqtt_topics_heap_mp.py on the binary): the peak live heap
   above idle and the bytes allocated, for this firmware and for the firmware at BASELINE_REV (before issue 13's
   memory work), from one run.

    .venv/bin/python tools/bench/mqtt_topics.py [--heap-only] [--before REV]
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from firmware_proc import Firmware, free_port, micropython_binary  # noqa: E402
from modbus_peers import read_pdu, request  # noqa: E402
from mqtt_peers import FakeBroker, Mosquitto, Observer  # noqa: E402

BAR_MS = 20
RUN_S = 8
BASELINE_REV = "3f01c00"  # the firmware before issue 13's memory work (snapshot list, configs copies, dict configs)
HEAP_SCRIPT = os.path.join(ROOT, "tools", "bench", "mqtt_topics_heap_mp.py")


def heap_round(firmware_dir):
    """{"plain"|"discovery": (peak, alloc, bytes, writes)} of one publish round on the firmware in firmware_dir."""
    fs = tempfile.mkdtemp(prefix="lp-mqtt-heap-")
    try:
        p = subprocess.run([micropython_binary(), "-X", "heapsize=8M", HEAP_SCRIPT, firmware_dir, fs],
                           capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(fs, ignore_errors=True)
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith("ROUND "):
            f = line.split()
            out[f[1]] = tuple(int(x.split("=")[1]) for x in f[2:])
    if not out:
        raise RuntimeError("heap round failed:\n" + p.stdout + p.stderr)
    return out


def firmware_at(rev, into):
    """The firmware/ tree of git revision rev, extracted into the directory into."""
    data = subprocess.run(["git", "-C", ROOT, "archive", rev, "firmware"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=data, check=True)
    return os.path.join(into, "firmware")


def print_heap(before_rev):
    now = heap_round(os.path.join(ROOT, "firmware"))
    tmp = tempfile.mkdtemp(prefix="lp-fw-before-")
    try:
        before = heap_round(firmware_at(before_rev, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("one MQTT publish round, 25 wallboxes + 8 meters, HA discovery on, 64-bit unix binary (a broker that never "
          "acknowledges: QoS 1 configs stay in the 16-message window)")
    print("  %-34s %16s %16s" % ("", "before (%s)" % before_rev, "now"))
    for kind, label in (("plain", "get/dev_info+params+<dev_id>"), ("discovery", "the same + HA discovery")):
        b, n = before[kind], now[kind]
        print("  %-34s %8d B peak %8d B peak" % (label, b[0], n[0]))
        print("  %-34s %7d B alloc %7d B alloc" % ("", b[1], n[1]))
    print("  published per round: %d B in %d writes (plain), %d B (with discovery)" % (now["plain"][2],
                                                                                       now["plain"][3],
                                                                                       now["discovery"][2]))


def modbus_loop(port, seconds, during=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    reads = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pdu = request(s, 1, read_pdu(3, 40000, 2), tid=reads & 0xFFFF)
        assert pdu[2:6] == b"SunS", pdu
        reads += 1
        if during is not None:
            during(reads)
        time.sleep(0.005)
    s.close()
    return reads


def boot(config):
    port = free_port()
    cfg = {"modbus_tcp_port": port, "pb_tcp_port": 0}
    cfg.update(config)
    fw = Firmware(config=cfg).start()
    fw.wait_port(port)
    return fw, port


def blackholed():
    fb = FakeBroker(None)
    url = "mqtt://127.0.0.1:%d" % fb.port
    fw, port = boot({"mqtt_url": url, "mqtt_api_url": "mqtt", "mqtt_dev_info_url": "mqtt", "mqtt_log_url": "mqtt",
                     "mqtt_ta_log_url": "mqtt", "mqtt_publish_s": 1})
    try:
        time.sleep(0.5)
        fw.ctl("loop_reset")
        reads = modbus_loop(port, RUN_S)
        return fw.status()["loop"]["worst_ms"], reads, fb.accepts
    finally:
        fw.stop()
        fb.close()


def busy():
    broker = Mosquitto().start()
    url = "mqtt://127.0.0.1:%d" % broker.port
    devs = [{"dev_id": "E%d" % i, "driver": "http_input", "address": "mqtt", "name": "Wallbox %d" % i,
             "publish_mqtt": True} for i in range(1, 26)]
    devs += [{"dev_id": "M%d" % i, "driver": "http_input", "address": "mqtt"} for i in range(1, 9)]
    fw, port = boot({"mqtt_url": url, "mqtt_api_url": "mqtt", "mqtt_dev_info_url": "mqtt", "mqtt_log_url": "mqtt",
                     "mqtt_publish_s": 1, "mqtt_ha_discovery": True, "devices": devs, "lb_enabled": False})
    obs = Observer(broker.port, topics=("cfos_mqtt/get/dev_info",))
    try:
        obs.wait("cfos_mqtt/get/dev_info", timeout=15)
        fw.ctl("loop_reset")
        pub = Observer(broker.port, topics=("nothing",))

        def feed(n):
            if n % 10 == 0:
                i = n // 10 % 25 + 1
                pub.c.publish("cfos_mqtt/set/E%d" % i, json.dumps({"state": 3, "current": [16000, 16000, 16000],
                                                                    "total_energy": n}))
                pub.c.publish("cfos_mqtt/set/M%d" % (i % 8 + 1), json.dumps({"power_w": n, "import_wh": n}))
            if n % 50 == 0:
                pub.c.publish("cfos_mqtt/api/cmd=set_params", json.dumps({"max_total_cur_prc": n % 100}))

        reads = modbus_loop(port, RUN_S, feed)
        worst = fw.status()["loop"]["worst_ms"]
        pub.close()
        size = len(obs.wait("cfos_mqtt/get/dev_info")[1])
        return worst, reads, size
    finally:
        obs.close()
        fw.stop()
        broker.close()


def main():
    args = sys.argv[1:]
    print_heap(args[args.index("--before") + 1] if "--before" in args else BASELINE_REV)
    if "--heap-only" in args:
        return
    w1, r1, accepts = blackholed()
    print("blackholed broker (%d s, %d TCP accepts): loop worst %d ms (bar %d ms), %d Modbus reads answered"
          % (RUN_S, accepts, w1, BAR_MS, r1))
    w2, r2, size = busy()
    print("mosquitto, 25 wallboxes + 8 meters, dev_info every 1 s, set/api traffic (%d s): loop worst %d ms "
          "(bar %d ms), %d Modbus reads answered; dev_info %d bytes, streamed per device" % (RUN_S, w2, BAR_MS,
                                                                                          r2, size))


if __name__ == "__main__":
    main()
