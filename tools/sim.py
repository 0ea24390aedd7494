"""`make sim`: the firmware on the real MicroPython binary, driving a virtual site, with a live status table
until Ctrl-C.

The virtual site (tools/site_model.py) has house load, a PV curve and EVs arriving at three wallboxes. The
EV at the local charge point E1 plugs into the firmware's control pilot on the virtual board: the sim sets
the CP voltage the car would produce and reads back the current the firmware offers. The Charging Manager
allocates against the 35 A house connection from the virtual grid meter; E2 and E3 (pushed devices) draw
what it allocates them. The SunSpec server listens on 127.0.0.1:1502 (scan it with pysunspec2 while the sim
runs), the web pages on http://127.0.0.1:8080/ (docs/webui.md): at the default speed the dashboard's plot shows
the simulated day passing, one simulated hour per real minute; the box's plot history takes one sample per
simulated minute (every 60 s / speed of real time), so a page opened later starts with the last 4 simulated hours. A restart from the System page ends the
firmware process, as a reset ends a board's program; the sim boots it again, as the board would.

The device filesystem is ./sim-state (kept between runs, like a board's flash). Options:
  --board NAME   a board file from boards/ (default unix_sim)
  --fs DIR       the directory that stands for the device's filesystem
  --speed N      simulated seconds per real second (default 60: a day in 24 minutes)
  --start HH     time of day the simulation starts at (default 16)
  --http-port N  the web pages' port (default 8080; 0: off)
  --once         run a few steps, print one status screen and exit (used by the tests)
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "host_tests"))
sys.path.insert(0, HERE)
from firmware_proc import ROOT, Firmware  # noqa: E402
from site_model import SiteModel  # noqa: E402
import www  # noqa: E402

SIM_CONFIG = {
    "title": "LoadPilot sim",
    "modbus_tcp_port": 1502,
    "http_port": 8080,
    "max_total_current": 35000,
    "devices": [
        {"dev_id": "E1", "driver": "evse_local", "name": "Carport", "address": "evse", "publish_modbus": True},
        # the virtual site pushes these devices' readings, as HTTP-input devices are fed
        {"dev_id": "E2", "driver": "http_input", "name": "Garage left", "publish_modbus": True},
        {"dev_id": "E3", "driver": "http_input", "name": "Garage right", "publish_modbus": True},
        {"dev_id": "M1", "driver": "http_input", "name": "Grid", "role": 3, "publish_modbus": True},
        {"dev_id": "M2", "driver": "http_input", "name": "PV", "role": 2, "publish_modbus": True},
    ],
}
CP_MV = {"A": 12000, "B": 9000, "C": 6000}


class Sim:
    def __init__(self, fw, speed, start_h):
        self.fw = fw
        self.speed = speed
        self.t_s = start_h * 3600
        self.model = SiteModel()
        self.cp = None
        self.last = {}

    def step(self):
        ev = self.fw.ctl("evse")
        alloc = {d["dev_id"]: d.get("alloc_ma", 0) for d in self.fw.status()["devices"]}
        offers = {"E2": alloc.get("E2", 0), "E3": alloc.get("E3", 0),
                  "E1": ev["offered_ma"] if ev["contactor"] else 0}
        readings = self.model.step(self.t_s, self.speed, offers)
        car = self.model.evs["E1"]
        if not car.present(self.t_s):
            cp = "A"
        elif car.charged_wh < car.need_wh and ev["offered_ma"] >= 6000:
            cp = "C"  # the car asks for power once it is offered
        else:
            cp = "B"
        if cp != self.cp:
            self.fw.ctl("set_adc", name="cp", mv=CP_MV[cp])
            self.cp = cp
        del readings["E1"]  # the firmware measures its own charge point; the totals are the manager's
        self.fw.ctl("site", readings=readings)
        self.last = readings
        self.last["evse"] = ev
        self.t_s += self.speed


def render(st, sim):
    t = sim.t_s % 86400
    lines = ["LoadPilot %s on %s   uptime %.1f s   site time %02d:%02d (x%d)" % (
        st["version"], st["board"], st["uptime_ms"] / 1000.0, t // 3600, t % 3600 // 60, sim.speed), ""]
    loop, heap = st["loop"], st["heap"]
    lines.append("loop lag   worst %d ms   p99 %d ms   (%d samples)" % (loop["worst_ms"], loop["p99_ms"],
                                                                         loop["samples"]))
    lines.append("heap       %d B used   %d B free   (lowest free %d B)" % (heap["alloc"], heap["free"],
                                                                           heap["min_free"]))
    lines.append("")
    lines.append("%-14s %-9s %8s  %s" % ("task", "state", "restarts", "last error"))
    for task in st["tasks"]:
        lines.append("%-14s %-9s %8d  %s" % (task["name"], task["state"], task["restarts"], task["last_error"] or ""))
    lines.append("")
    lines.append("%-4s %-8s %26s %9s %11s %8s  %s" % ("dev", "state", "current mA L1/L2/L3", "power W", "import Wh",
                                                      "alloc mA", "reason"))
    for d in st["devices"]:
        cur = "/".join(str(c) for c in d["current_ma"])
        state = {1: "waiting", 2: "plugged", 3: "charging", 4: "vent", 5: "error", 6: "offline"}.get(
            d.get("state"), "")
        lines.append("%-4s %-8s %26s %9d %11d %8s  %s" % (d["dev_id"], state, cur, d["power_w"], d["import_wh"],
                                                           d.get("alloc_ma", ""), d.get("reason", "")))
    ev = sim.last.get("evse")
    if ev:
        lines.append("")
        lines.append("local charge point E1: CP %s, %s, offering %d mA (limited by %s), contactor %s" % (
            ev["cp"], ev["state"], ev["offered_ma"], ev["limit"].get("reason", "?"),
            "closed" if ev["contactor"] else "open"))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--board", default="unix_sim")
    ap.add_argument("--fs", default=os.path.join(ROOT, "sim-state"))
    ap.add_argument("--speed", type=int, default=60)
    ap.add_argument("--start", type=int, default=16)
    ap.add_argument("--http-port", type=int, default=8080)
    ap.add_argument("--once", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.fs, exist_ok=True)
    www.build(os.path.join(args.fs, "www"))  # the pages as `make deploy` puts them on a board
    # the plot's history on the box (power_history.py) samples on the firmware's own clock, which runs at real
    # speed: one sample per simulated minute is 60 s / speed of it, so the box keeps the last 4 simulated hours
    patch = "import loadpilot.power_history as p; p.STEP_MS = %d" % max(100, 60000 // args.speed)
    fw = Firmware(board=args.board, fs_dir=args.fs, config=dict(SIM_CONFIG, http_port=args.http_port), patch=patch)
    fw.start()
    if fw.ctl("config_get", key="http_port") != args.http_port:  # a sim-state from before the pages existed
        fw.ctl("config_set", key="http_port", value=args.http_port)
        fw.ctl("config_flush")
        fw.stop()
        fw.start()  # HTTP starts at boot
    sim = Sim(fw, args.speed, args.start)
    web = "web pages on http://127.0.0.1:%d/ (user operator)" % args.http_port if args.http_port else "web pages off"
    try:
        if args.once:
            for _ in range(3):
                sim.step()
                time.sleep(0.4)
            print(render(fw.ctl("status", gc=True), sim))
            return 0
        while True:
            if fw.proc.poll() is not None:  # restarted from the System page (or crashed): boot it again
                fw.stop()
                fw.start()
                sim.cp = None
            sim.step()
            screen = render(fw.ctl("status", gc=True), sim)
            sys.stdout.write("\x1b[2J\x1b[H" + screen + "\n\nSunSpec on 127.0.0.1:1502   %s   Ctrl-C to stop\n" % web)
            sys.stdout.flush()
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping")
        return 0
    finally:
        fw.stop()


if __name__ == "__main__":
    sys.exit(main())
