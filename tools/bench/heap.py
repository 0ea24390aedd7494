"""Heap in use after boot, on the MicroPython binary: the baseline later features are held to.

Boots firmware/main.py with the unix_sim board, waits for the loop to settle, then prints the heap figures
from the status view (gc.mem_alloc / mem_free, sampled by the firmware itself)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "host_tests"))
from firmware_proc import Firmware  # noqa: E402


def main():
    with Firmware() as fw:
        time.sleep(2.0)
        st = fw.status()
    heap = st["heap"]
    print("heap after boot (unix_sim, MicroPython %s binary, 64-bit objects)" % "1.29")
    print("  in use      %7d B" % heap["alloc"])
    print("  free        %7d B" % heap["free"])
    print("  lowest free %7d B" % heap["min_free"])
    print("  tasks       %s" % ", ".join(t["name"] for t in st["tasks"]))
    print("baseline: ESP32 without PSRAM has ~100-130 KB of GC heap with WiFi up; 64-bit unix objects are")
    print("larger than ESP32's 32-bit ones, so this figure is an upper bound for the same code.")


if __name__ == "__main__":
    main()
