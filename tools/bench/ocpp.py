"""OCPP client benchmark on the MicroPython unix binary: `python tools/bench/ocpp.py`.

Prints, each figure beside the baseline measured in the same run:
- WebSocket masking: us and bytes allocated per KB for our in-place loop (ocpp/ws.py mask_into), for the
  byte-by-byte copy other MicroPython WebSocket clients make (the baseline), and for a viper loop (defined in
  the bench only: the firmware is frozen as bytecode without -march); bytes allocated per sent frame;
- the resident heap of the OCPP client (import + construction of OcppService, .mpy files as a deploy ships
  them, 64-bit venv binary), beside the 12 KB bar for the 32-bit frozen build (about 1/4 of the 64-bit .mpy
  figure, docs/firmware.md);
- DNS: how long socket.getaddrinfo holds the loop on this host, and the worst loop stall while our resolver
  (ocpp/dns.py) waits on a DNS server that never answers.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import firmware_proc  # noqa: E402
import deploy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BAR_32_FROZEN = 12 * 1024
RATIO_64_MPY_TO_32_FROZEN = 4  # docs/firmware.md: core profile 64-bit .mpy / 32-bit frozen = 4.24


def run(*args, binary=None):
    p = subprocess.run([binary or firmware_proc.micropython_binary(), os.path.join(HERE, "ocpp_mp.py")] + list(args),
                       capture_output=True, text=True, timeout=120)
    if p.returncode:
        raise SystemExit(p.stdout + p.stderr)
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def main():
    scratch = tempfile.mkdtemp(prefix="ocpp-bench-")
    mpy = os.path.join(scratch, "mpy")
    os.makedirs(mpy)
    deploy.compile_firmware(mpy)
    figs = {f["figure"]: f for f in run(firmware_proc.FIRMWARE, scratch, "mask")}
    print("WebSocket masking, 1 KB payload (MicroPython %s, 64-bit unix port):" % "venv binary")
    for name, label in (("mask_naive", "baseline: byte-by-byte copy"), ("mask_ours", "ours: in place, bytecode"),
                        ("mask_viper", "viper loop (bench only)")):
        f = figs[name]
        print("  %-30s %8.1f us/KB  %6d bytes allocated/KB" % (label, f["us_per_kb"], f["bytes_alloc_per_kb"]))
    n, o = figs["mask_naive"], figs["mask_ours"]
    print("  ours is %.1fx faster than the baseline and allocates %d bytes instead of %d" %
          (n["us_per_kb"] / max(o["us_per_kb"], 0.1), o["bytes_alloc_per_kb"], n["bytes_alloc_per_kb"]))
    f = figs["ws_send_frame"]
    print("  one StatusNotification frame (%d bytes) sent: %d bytes allocated" %
          (f["payload_bytes"], f["bytes_alloc_per_frame"]))

    frozen32 = os.path.join(ROOT, "build", "unix32", "frozen", "micropython")
    if os.path.exists(frozen32):  # `make firmware` built it: the firmware frozen, at the ESP32's word size
        f = run(os.path.join(scratch, "none"), scratch, "heap", binary=frozen32)[0]
        print("Resident heap of the OCPP client, 32-bit unix port with the firmware frozen (as on the ESP32): "
              "import %d B + construction %d B = %d B; bar %d B: %s" %
              (f["import_bytes"], f["construct_bytes"], f["total_bytes"], BAR_32_FROZEN,
               "within" if f["total_bytes"] <= BAR_32_FROZEN else "OVER"))
        print("  (%s was built from this tree's firmware when `make firmware` last ran: rebuild after changes)"
              % os.path.relpath(frozen32, ROOT))
    else:
        print("No 32-bit frozen build (make firmware MICROPY_DIR=...): the 32-bit figure below is an estimate")
    h = run(mpy, scratch, "heap")[0]
    est = h["total_bytes"] // RATIO_64_MPY_TO_32_FROZEN
    print("Resident heap of the OCPP client (.mpy, 64-bit): import %d B + construction %d B = %d B "
          "(of which %d B are the WebSocket buffers)" % (h["import_bytes"], h["construct_bytes"],
                                                         h["total_bytes"], h["buffers_bytes"]))
    print("  32-bit frozen estimate: bytecode stays in flash; the buffers do not shrink. Estimate %d B "
          "(64-bit / %d), at most %d B (buffers + the rest / %d); bar %d B" %
          (est, RATIO_64_MPY_TO_32_FROZEN,
           h["buffers_bytes"] + (h["total_bytes"] - h["buffers_bytes"]) // RATIO_64_MPY_TO_32_FROZEN,
           RATIO_64_MPY_TO_32_FROZEN, BAR_32_FROZEN))

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        figs = run(mpy, scratch, "dns", str(silent.getsockname()[1]))
    finally:
        silent.close()
    print("DNS:")
    for f in figs:
        if f["figure"] == "getaddrinfo":
            print("  socket.getaddrinfo(%r): the loop stood still %d us (this host's resolver; on an ESP32 "
                  "lwIP holds the caller until its DNS server answers or its retries run out)" %
                  (f["host"], f["stall_us"]))
        else:
            print("  ours, against a DNS server that never answers: gave up after %d ms, worst loop stall "
                  "%d ms (%s)" % (f["took_ms"], f["worst_loop_stall_ms"], f["result"]))


if __name__ == "__main__":
    main()
