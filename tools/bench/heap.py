"""Heap in use after boot, on the MicroPython binary: the baseline later features are held to.

Boots the firmware twice with the unix_sim board: from source, and as deployed (.mpy files made by
mpy-cross, as `make deploy` ships them). Each time it waits for the loop to settle, asks the firmware to
gc.collect(), and prints the live heap from its status view."""
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "host_tests"))
sys.path.insert(0, os.path.join(HERE, ".."))
from firmware_proc import Firmware  # noqa: E402
import deploy  # noqa: E402


def measure(main=None):
    with Firmware(main=main) as fw:
        time.sleep(2.0)
        return fw.ctl("status", gc=True)


def main():
    src = measure()
    tree = tempfile.mkdtemp(prefix="loadpilot-mpy-")
    try:
        for remote, local in deploy.compile_firmware(tree):
            if remote == "main.py":
                shutil.copy(local, os.path.join(tree, "main.py"))
        mpy = measure(os.path.join(tree, "main.py"))
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    print("heap after boot and gc.collect(), unix_sim board, MicroPython 1.29 unix binary (64-bit objects)")
    print("  tasks: %s" % ", ".join(t["name"] for t in src["tasks"]))
    print("  %-22s %9s %9s" % ("", "from .py", "from .mpy"))
    for key, label in (("alloc", "in use"), ("min_free", "lowest free")):
        print("  %-22s %8d B %8d B" % (label, src["heap"][key], mpy["heap"][key]))
    print("baseline: an ESP32 without PSRAM has about 100-130 KB of GC heap with WiFi up. Objects on the")
    print("64-bit unix port are up to twice their 32-bit ESP32 size, so these figures are an upper bound.")


if __name__ == "__main__":
    main()
