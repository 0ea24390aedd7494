"""`make sim`: boot the firmware on the real MicroPython binary with the unix_sim board and show its live
status (tasks, loop lag, heap, devices) until Ctrl-C.

The device filesystem is ./sim-state (kept between runs, like a board's flash). Options:
  --board NAME   a board file from boards/ (default unix_sim)
  --fs DIR       the directory that stands for the device's filesystem
  --once         print one status screen and exit (used by the tests)
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host_tests"))
from firmware_proc import ROOT, Firmware  # noqa: E402


def render(st):
    lines = ["LoadPilot %s on %s   uptime %.1f s" % (st["version"], st["board"], st["uptime_ms"] / 1000.0), ""]
    loop, heap = st["loop"], st["heap"]
    lines.append("loop lag   worst %d ms   p99 %d ms   (%d samples)" % (loop["worst_ms"], loop["p99_ms"],
                                                                         loop["samples"]))
    lines.append("heap       %d B used   %d B free   (lowest free %d B)" % (heap["alloc"], heap["free"],
                                                                           heap["min_free"]))
    lines.append("")
    lines.append("%-14s %-9s %8s  %s" % ("task", "state", "restarts", "last error"))
    for t in st["tasks"]:
        lines.append("%-14s %-9s %8d  %s" % (t["name"], t["state"], t["restarts"], t["last_error"] or ""))
    lines.append("")
    if st["devices"]:
        lines.append("%-6s %-10s %-8s %10s %10s  %s" % ("dev", "type", "state", "cur mA", "power W", "reason"))
        for d in st["devices"]:
            lines.append("%-6s %-10s %-8s %10s %10s  %s" % (d.get("dev_id"), d.get("type", ""),
                                                           d.get("state", ""), d.get("cur_ma", ""),
                                                           d.get("power_w", ""), d.get("reason", "")))
    else:
        lines.append("devices: none configured yet")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--board", default="unix_sim")
    ap.add_argument("--fs", default=os.path.join(ROOT, "sim-state"))
    ap.add_argument("--once", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.fs, exist_ok=True)
    fw = Firmware(board=args.board, fs_dir=args.fs)
    fw.start()
    try:
        if args.once:
            time.sleep(1.0)
            print(render(fw.status()))
            return 0
        while True:
            screen = render(fw.status())
            sys.stdout.write("\x1b[2J\x1b[H" + screen + "\n\nCtrl-C to stop\n")
            sys.stdout.flush()
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping")
        return 0
    finally:
        fw.stop()


if __name__ == "__main__":
    sys.exit(main())
