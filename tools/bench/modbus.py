"""Modbus TCP server benchmark: LoadPilot's server against micropython-modbus 2.3.7, same 1,100-register map,
same MicroPython binary, same run. Prints four figures per side, the ratio, and PASS/FAIL per bar.

    .venv/bin/python tools/bench/modbus.py

Figures (all measured inside the server process, see modbus_server_mp.py):
  map heap     gc.mem_alloc() growth from building the map (after gc.collect())
  bytes/read   heap allocated per 125-register read (FC3), marks' own cost subtracted
  CPU/request  process CPU (schedstat) per 125-register read, marks' own cost subtracted
  loop stall   worst lateness of a 10 ms ticker task while a client is connected and idle, taken in
               5 windows of 1 s; the figure is the median window's worst (the worst of all windows is
               printed too). The median keeps one OS preemption on a busy host from deciding the bar;
               a stall the server causes shows in every window (the peer's blocking recv does).
"""
import os
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
import firmware_proc  # noqa: E402

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "modbus_server_mp.py")
N_ALLOC = 20    # the peer allocates ~20 KB per read: keep the window below any garbage collection
N_CPU = 1000
IDLE_WINDOWS = 5
IDLE_S = 1.0
HEAP = "8M"


class Side:
    def __init__(self, name):
        self.name = name
        self.port = firmware_proc.free_port()
        env = dict(os.environ, MICROPYPATH=":".join([os.path.join(ROOT, "firmware"),
                                                     os.path.join(ROOT, "build", "peers"), ".frozen"]))
        self.proc = subprocess.Popen([firmware_proc.micropython_binary(), "-X", "heapsize=" + HEAP, SERVER,
                                      name, str(self.port)], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.map_heap = None
        for line in self.proc.stdout:
            if line.startswith("MAP "):
                self.map_heap = int(line.split()[1])
            if line.startswith("READY"):
                break
        else:
            raise RuntimeError("%s server did not start" % name)
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.tid = 0

    def request(self, unit, pdu):
        self.tid = (self.tid + 1) & 0xFFFF
        self.sock.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, unit) + pdu)
        head = self._recv(7)
        tid, proto, length, runit = struct.unpack(">HHHB", head)
        body = self._recv(length - 1)
        if tid != self.tid:
            raise RuntimeError("%s: transaction id %d, expected %d" % (self.name, tid, self.tid))
        return body

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("%s closed the connection" % self.name)
            buf += chunk
        return buf

    def read125(self, check=False):
        body = self.request(1, struct.pack(">BHH", 3, 0, 125))
        if check and body != bytes([3, 250]) + struct.pack(">125H", *range(125)):
            raise RuntimeError("%s served wrong registers: %r" % (self.name, body[:12]))

    def mark(self, which):
        self.request(2, struct.pack(">BHH", 3, 5000 + which, 1))

    def measure(self):
        for _ in range(50):
            self.read125(check=True)
        for which in (0, 1, 2, 3, 4, 6):  # warm up the marks' own request paths, then forget the records
            self.mark(which)
        self.mark(0)
        # allocation: window with reads, then an empty window for the marks' own cost
        self.mark(1)
        for _ in range(N_ALLOC):
            self.read125()
        self.mark(1)
        self.mark(1)
        self.mark(1)
        # CPU, same scheme
        self.mark(2)
        for _ in range(N_CPU):
            self.read125()
        self.mark(2)
        self.mark(2)
        self.mark(2)
        # a connected, idle client: several windows, each with its own worst stall
        for _ in range(IDLE_WINDOWS):
            self.mark(3)
            time.sleep(IDLE_S)
            self.mark(4)
        self.mark(5)
        for line in self.proc.stdout:
            if line.startswith("MARKS"):
                r = [int(x) for x in line.split()[1:]]
                break
        else:
            raise RuntimeError("%s: no marks" % self.name)
        a0, a1, a2, a3, c0, c1, c2, c3 = r[:8]
        stalls = sorted(r[8:])
        self.bytes_per_read = ((a1 - a0) - (a3 - a2)) / N_ALLOC
        self.cpu_us = ((c1 - c0) - (c3 - c2)) / N_CPU / 1000.0
        self.stall_ms = stalls[len(stalls) // 2]
        self.stall_max_ms = stalls[-1]

    def close(self):
        self.sock.close()
        self.proc.terminate()
        self.proc.wait(5)


def main():
    results = {}
    for name in ("ours", "peer"):
        side = Side(name)
        try:
            side.measure()
        finally:
            side.close()
        results[name] = side
    ours, peer = results["ours"], results["peer"]

    def ratio(a, b):
        return "%.1fx" % (b / a) if a else "inf"

    rows = [
        ("map heap (bytes, 1100 regs)", ours.map_heap, peer.map_heap, ratio(ours.map_heap, peer.map_heap),
         "<= 1/20 of peer", ours.map_heap * 20 <= peer.map_heap),
        ("bytes allocated / 125-reg read", ours.bytes_per_read, peer.bytes_per_read,
         ratio(ours.bytes_per_read, peer.bytes_per_read), "0", ours.bytes_per_read == 0),
        ("server CPU / request (us)", ours.cpu_us, peer.cpu_us, ratio(ours.cpu_us, peer.cpu_us),
         "<= 1/3 of peer", ours.cpu_us * 3 <= peer.cpu_us),
        ("worst loop stall, idle client (ms)", ours.stall_ms, peer.stall_ms, ratio(ours.stall_ms, peer.stall_ms),
         "<= 10 ms", ours.stall_ms <= 10),
    ]
    print("Modbus TCP server: LoadPilot vs micropython-modbus 2.3.7 (MicroPython %s, heap %s)"
          % (subprocess.run([firmware_proc.micropython_binary(), "-c", "import sys;print(sys.implementation._machine, sys.implementation.version)"],
                            capture_output=True, text=True).stdout.strip(), HEAP))
    print("%-36s %12s %12s %8s  %-16s %s" % ("figure", "LoadPilot", "umodbus", "ratio", "bar", "result"))
    ok = True
    for label, a, b, r, bar, passed in rows:
        ok = ok and passed
        fa = "%.1f" % a if isinstance(a, float) else str(a)
        fb = "%.1f" % b if isinstance(b, float) else str(b)
        print("%-36s %12s %12s %8s  %-16s %s" % (label, fa, fb, r, bar, "PASS" if passed else "FAIL"))
    print("(ratio = umodbus / LoadPilot; reads: %d for allocation, %d for CPU; loop stall = median of %d "
          "idle windows of %.0f s, worst window: LoadPilot %d ms, umodbus %d ms)"
          % (N_ALLOC, N_CPU, IDLE_WINDOWS, IDLE_S, ours.stall_max_ms, peer.stall_max_ms))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
