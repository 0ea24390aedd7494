"""Bus-cycle cost of a Modbus TCP device that connects per poll (a host past the board's socket budget,
config/schema.py socket_plan) beside one that keeps its connection, on the MicroPython unix binary.

    .venv/bin/python tools/bench/tcp_per_poll.py [--hosts 3] [--cycles 40]

The peers are OMCCI stations served by pymodbus over TCP on 127.0.0.1 (one process per host:port). The
firmware's DeviceLayer (devices/layer.py) polls them with the evse_omcci driver, first with tcp_own = hosts
(every host connected), then with tcp_own = 0 (every host per poll through the one shared socket). Each bus
cycle runs on its own, one after the other, so a figure is the cost of one host's cycle and never includes
waiting for the shared socket. Printed per mode: median and worst cycle (ms) and connects per cycle; then the
per-poll surcharge per host and cycle (median per poll - median connected), and how many per-poll hosts fit
in one TCP period (devices/layer.py TCP_PERIOD_MS) at the measured per-poll cycle. Loopback has no network
round trip: on WiFi add one RTT per per-poll host and cycle (the TCP handshake) to the surcharge.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTEGRATION = os.path.join(ROOT, "host_tests", "integration")
sys.path[:0] = [INTEGRATION, os.path.join(ROOT, "host_tests")]

import firmware_proc  # noqa: E402
import ptybus  # noqa: E402

MP_SCRIPT = r"""
import asyncio, json, time
from loadpilot import board as boardmod
from loadpilot.config import schema
from loadpilot.devices import layer as layer_mod
from loadpilot.hal import unix
from loadpilot.site import Site

hal = unix.Hal(boardmod.load(BOARD))
devs = schema.validate("devices", [{"dev_id": "E%d" % (i + 2), "driver": "evse_omcci", "id": 1,
                                    "address": "127.0.0.1:%d" % p} for i, p in enumerate(ARGS["ports"])])

async def measure(tcp_own):
    site = Site()
    site.configure([d["dev_id"] for d in devs])
    layer = layer_mod.build(devs, site, {}, hal, tcp_own=tcp_own)
    out = []
    for bus in layer.buses:
        await bus.cycle()  # warm: first connect, first reads
        times = []
        c0 = bus.client.connects
        for _ in range(ARGS["cycles"]):
            t0 = time.ticks_us()
            await bus.cycle()
            times.append(time.ticks_diff(time.ticks_us(), t0))
        ok = [not site.device(e.dev_id).com_err for e in bus.entries]
        out.append({"bus": bus.name, "per_poll": bus.pool is not None, "us": times,
                    "connects": bus.client.connects - c0, "ok": all(ok), "requests": bus.client.ok})
    await layer.close()
    return out

async def main():
    for mode, own in (("connected", len(devs)), ("per_poll", 0)):
        print("RESULT " + json.dumps({"mode": mode, "buses": await measure(own)}))

asyncio.run(main())
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--cycles", type=int, default=40)
    args = ap.parse_args()
    peers = []
    buses = []
    ports = []
    try:
        for _ in range(args.hosts):
            bus = ptybus.PtyPair()
            buses.append(bus)
            port = firmware_proc.free_port()
            p = subprocess.Popen([sys.executable, os.path.join(INTEGRATION, "pymodbus_site_peers.py"), bus.peer,
                                  "19200", "0", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, bufsize=1)
            peers.append(p)
            ptybus.wait_line(p, "peers ready")
            ports.append(port)
        fw = ptybus.start_micropython(MP_SCRIPT, buses[0].fw, {"ports": ports, "cycles": args.cycles})
        out, _ = fw.communicate(timeout=300)
    finally:
        for p in peers:
            ptybus.stop(p)
        for b in buses:
            b.close()
    results = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            results[r["mode"]] = r["buses"]
    if len(results) != 2:
        print(out)
        sys.exit(1)
    print("Modbus TCP device bus cycle, evse_omcci driver, %d hosts, %d cycles each, pymodbus peers on loopback"
          % (args.hosts, args.cycles))
    med = {}
    for mode in ("connected", "per_poll"):
        all_us = [t for b in results[mode] for t in b["us"]]
        conn = sum(b["connects"] for b in results[mode]) / float(args.hosts * args.cycles)
        reqs = results[mode][0]["requests"]
        med[mode] = statistics.median(all_us) / 1000.0
        print("  %-9s  median %6.2f ms  worst %6.2f ms  connects per cycle %.2f  all read: %s  (requests of the "
              "first host: %d)" % (mode, med[mode], max(all_us) / 1000.0, conn,
                                   all(b["ok"] for b in results[mode]), reqs))
    extra = med["per_poll"] - med["connected"]
    print("  per-poll surcharge per host and cycle: %.2f ms (%.1f x the connected cycle)"
          % (extra, med["per_poll"] / med["connected"] if med["connected"] else 0))
    print("  per-poll hosts that fit one 1000 ms TCP period, one after another: %d" % int(1000 / med["per_poll"]))


if __name__ == "__main__":
    main()
