"""Modbus fuzz benchmark (issue 12): the firmware booted on the MicroPython binary, its SunSpec server fed
malformed and random frames on TCP (loopback) and on RTU (a pty pair from socat), from the generator the
CPython fuzz test uses (host_tests/modbus_fuzz.py).

    .venv/bin/python tools/bench/fuzz.py [tcp_frames [rtu_frames]]     (default 105000 and 10000)

Prints, against the bars: crashes (firmware exit, Python traceback, restarted task: 0), frames answered
wrongly or not at all (0), the well-formed reads after the fuzz compared with before (same), the heap after
gc.collect() before and after (status "heap", growth under 16 KB), and the worst loop stall seen by the
firmware's loop-lag monitor over the whole run (status "loop"). Stops by itself: about 2 min at defaults.
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "host_tests"), os.path.join(ROOT, "host_tests", "integration")]
import serial  # noqa: E402

import modbus_fuzz  # noqa: E402
import ptybus  # noqa: E402

HEAP_SLACK = 16 * 1024


def main():
    n_tcp = int(sys.argv[1]) if len(sys.argv) > 1 else 105000
    n_rtu = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    bus = ptybus.PtyPair()
    fw = None
    failed = False
    try:
        fw = modbus_fuzz.start_firmware(bus.fw)
        ser = serial.Serial(bus.peer, 115200, timeout=0)
        tcp_known = modbus_fuzz.known_reads_tcp(fw.sunspec_port)
        rtu_known = modbus_fuzz.known_reads_rtu(ser)
        modbus_fuzz.fuzz_tcp(fw.sunspec_port, 3000, seed=1)  # warm-up before the heap baseline
        modbus_fuzz.fuzz_rtu(ser, 300, seed=1)
        st = fw.ctl("status", gc=True)
        heap_before, loop_before = st["heap"]["alloc"], st["loop"]
        t0 = time.monotonic()
        tcp = modbus_fuzz.fuzz_tcp(fw.sunspec_port, n_tcp, seed=20261126)
        t_tcp = time.monotonic() - t0
        t0 = time.monotonic()
        rtu = modbus_fuzz.fuzz_rtu(ser, n_rtu, seed=20261126)
        t_rtu = time.monotonic() - t0
        alive = fw.proc.poll() is None
        same_tcp = alive and modbus_fuzz.known_reads_tcp(fw.sunspec_port) == tcp_known
        same_rtu = alive and modbus_fuzz.known_reads_rtu(ser) == rtu_known
        st = fw.ctl("status", gc=True) if alive else None
        n_restarts, errors = modbus_fuzz.restarts(fw) if alive else (None, ["firmware exited"])
        ser.close()
    finally:
        if fw is not None:
            fw.stop()
        bus.close()
    tracebacks = fw.read_output().count("Traceback") if fw is not None else 0
    crashes = (0 if alive else 1) + tracebacks + (n_restarts or 0)

    def row(name, value, bar, ok):
        nonlocal failed
        failed |= not ok
        print("  %-44s %-28s %-14s %s" % (name, value, bar, "PASS" if ok else "FAIL"))

    print("LoadPilot Modbus fuzz, SunSpec server (units 1 and 2) of the booted firmware")
    print("TCP: %d frames in %.0f s (%d pipelined well-framed PDUs, %d broken MBAP headers, %d garbage), %d "
          "connections" % (tcp["frames"], t_tcp, tcp["answered"] + tcp["unanswered"], tcp["dropped"] + tcp["kept"],
                           tcp["garbage"], tcp["connects"]))
    print("RTU: %d frames in %.0f s over a pty at 115200 baud (%d with a right CRC to unit 1 or 2), %d bytes "
          "answered" % (rtu["frames"], t_rtu, rtu["crc_ok"], rtu["bytes_back"]))
    malformed = tcp["exceptions"] + tcp["dropped"] + tcp["kept"] + tcp["garbage"]
    print("TCP frames that were malformed (answered with an exception, broken header, garbage): %d" % malformed)
    print("  %-44s %-28s %-14s %s" % ("figure", "measured", "bar", ""))
    row("crashes (exit, traceback, task restart)", "%d" % crashes, "0", crashes == 0)
    if errors:
        print("    task errors:", errors)
    row("TCP frames unanswered or answered wrongly", "%d" % (tcp["unanswered"] + tcp["wrong"]), "0",
        tcp["unanswered"] + tcp["wrong"] == 0)
    row("TCP exception answers", "%d of %d" % (tcp["exceptions"], tcp["answered"]), "-", True)
    row("broken MBAP headers: connection dropped", "%d of %d" % (tcp["dropped"], tcp["dropped"] + tcp["kept"]),
        "all", tcp["kept"] == 0)
    row("well-formed reads after the fuzz, TCP / RTU", "%s / %s" % ("same" if same_tcp else "DIFFERENT",
                                                                    "same" if same_rtu else "DIFFERENT"),
        "same", same_tcp and same_rtu)
    if st is not None:
        growth = st["heap"]["alloc"] - heap_before
        row("heap after gc, before -> after (bytes)", "%d -> %d (%+d)" % (heap_before, st["heap"]["alloc"], growth),
            "< +%d" % HEAP_SLACK, growth < HEAP_SLACK)
        print("  %-44s %-28s %-14s %s" % ("worst loop stall, whole run (ms)", "%d (p99 %d; %d before the fuzz)"
                                         % (st["loop"]["worst_ms"], st["loop"]["p99_ms"], loop_before["worst_ms"]),
                                         "-", ""))
    print("RESULT", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
