"""Modbus TCP admission benchmark (issue 12): the firmware booted on the MicroPython binary, its SunSpec
server (4 client slots) attacked on loopback while a legitimate pymodbus master reads 40000-40001 ("SunS"),
each read on a fresh connection (connect, read, close), one every 50 ms.

    .venv/bin/python tools/bench/admission.py [reads_per_phase]

Phases, in one run against one firmware process:
  none       no attack (the reference)
  idle       50 sockets connected and silent (re-opened 50 ms after the server closes one)
  slowloris  6 sockets sending 1 byte per second of a frame that never completes
  storm      4 threads connecting and closing as fast as they can
  all        the three above at once
Per phase it prints the master's served fraction (an answer, correct, within 1 s of starting to connect),
its worst and median latency, the bar (>= 99 % served within 1 s) and PASS/FAIL, what the attackers saw,
and the server's counters. The firmware's worst loop stall (status "loop") is printed at the end.
Loopback only; stops by itself (about 4 x reads_per_phase x 60 ms plus boot).
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
import firmware_proc  # noqa: E402
import tcp_attacks  # noqa: E402

BAR_SERVED = 0.99
BAR_LATENCY_S = 1.0
SUNS = [0x5375, 0x6E53]


def attacks(port, which):
    made = []
    if which in ("idle", "all"):
        made.append(tcp_attacks.IdleSockets(port, n=50))
    if which in ("slowloris", "all"):
        made.append(tcp_attacks.Slowloris(port, n=6))
    if which in ("storm", "all"):
        made.append(tcp_attacks.ConnectStorm(port, n=4))
    return made


def main():
    reads = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    fw = firmware_proc.Firmware().start()
    failed = False
    try:
        port = fw.sunspec_port
        fw.wait_port(port)
        print("LoadPilot Modbus TCP admission, SunSpec server on 127.0.0.1:%d, %d reads per phase, bar: >= %d %% "
              "served within %.1f s" % (port, reads, BAR_SERVED * 100, BAR_LATENCY_S))
        print("%-10s %8s %10s %10s %6s  %s" % ("attack", "served", "worst ms", "median ms", "bar", "attackers"))
        for phase in ("none", "idle", "slowloris", "storm", "all"):
            running = [a.start() for a in attacks(port, phase)]
            time.sleep(2.0 if running else 0)  # let the attack take hold: every slot held, slowloris trickling
            lat = tcp_attacks.master_reads(port, reads, unit=1, addr=40000, count=2, timeout_s=BAR_LATENCY_S,
                                           check=lambda regs: regs == SUNS)
            for a in running:
                a.stop()
            frac, worst, n = tcp_attacks.summary(lat)
            got = sorted(x for x in lat if x is not None)
            median = got[len(got) // 2] * 1000 if got else None
            ok = frac >= BAR_SERVED
            failed |= not ok
            seen = ", ".join("%s: %d connects, %d closed by server" % (a.name, a.connects, a.closed_by_server)
                             for a in running) or "-"
            worst_s = "%.1f" % worst if worst is not None else "-"
            median_s = "%.1f" % median if median is not None else "-"
            print("%-10s %7.1f%% %10s %10s %6s  %s" % (phase, frac * 100, worst_s, median_s, "PASS" if ok else "FAIL",
                                                    seen))
            time.sleep(1.5)  # the attackers' sockets close before the next phase
        st = fw.status()
        tasks = st.get("tasks")
        print("firmware loop:", st["loop"])
        print("firmware heap:", st["heap"])
        if isinstance(tasks, dict) and "sunspec_tcp" in tasks:
            print("sunspec_tcp task:", tasks["sunspec_tcp"])
        out = fw.read_output()
        if "Traceback" in out:
            print(out)
            failed = True
    finally:
        fw.stop()
    print("RESULT", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
