"""Socket attacks on a Modbus TCP server on loopback, each in its own thread, each bounded: idle sockets,
slowloris, a connect storm. Plus a legitimate pymodbus master that opens a fresh connection per read.
Used by host_tests/integration/test_modbus_tcp_admission.py and tools/bench/admission.py."""
import logging
import socket
import struct
import threading
import time

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def _open(port, timeout=2):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None
    s.setblocking(False)
    return s


def _closed_by_peer(s):
    try:
        return s.recv(64) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class Attack:
    """A thread running until stop(); counts the server's closes of its sockets."""

    name = "attack"

    def __init__(self, port, n=1):
        self.port = port
        self.n = n
        self.closed_by_server = 0
        self.connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        raise NotImplementedError

    def _live(self, socks, i):
        """socks[i], opened again if the server closed it (counted); None when it cannot be opened now.
        -> (socket or None, True when it is a new connection)."""
        s = socks[i]
        if s is not None and _closed_by_peer(s):
            s.close()
            self.closed_by_server += 1
            s = None
        if s is not None or self._stop.is_set():
            socks[i] = s
            return s, False
        socks[i] = s = _open(self.port)
        self.connects += 1
        return s, True


class IdleSockets(Attack):
    """n sockets that connect and send nothing; a socket the server closes is opened again after 50 ms."""

    name = "idle"

    def _run(self):
        socks = [None] * self.n
        try:
            while not self._stop.is_set():
                for i in range(self.n):
                    self._live(socks, i)
                self._stop.wait(0.05)
        finally:
            for s in socks:
                if s is not None:
                    s.close()


class Slowloris(Attack):
    """n sockets, each sending one byte per second of a frame that announces 253 more bytes (never complete);
    a socket the server closes is opened again at once."""

    name = "slowloris"
    FRAME = struct.pack(">HHHB", 1, 0, 254, 1) + bytes(253)

    def __init__(self, port, n=4, interval_s=1.0):
        super().__init__(port, n)
        self.interval_s = interval_s
        self.bytes_sent = 0

    def _run(self):
        socks = [None] * self.n
        pos = [0] * self.n
        try:
            while not self._stop.is_set():
                for i in range(self.n):
                    s, new = self._live(socks, i)
                    if new:
                        pos[i] = 0
                    if s is None:
                        continue
                    try:
                        s.send(self.FRAME[pos[i] % len(self.FRAME):pos[i] % len(self.FRAME) + 1])
                        pos[i] += 1
                        self.bytes_sent += 1
                    except OSError:
                        s.close()
                        self.closed_by_server += 1
                        socks[i] = None
                self._stop.wait(self.interval_s)
        finally:
            for s in socks:
                if s is not None:
                    s.close()


class ConnectStorm(Attack):
    """Connect, wait hold_s, close, again, as fast as one thread can; n threads."""

    name = "storm"

    def __init__(self, port, n=2, hold_s=0.0):
        super().__init__(port, n)
        self.hold_s = hold_s
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]
        self._lock = threading.Lock()

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def _run(self):
        while not self._stop.is_set():
            s = _open(self.port, timeout=1)
            with self._lock:
                self.connects += 1
            if s is None:
                self._stop.wait(0.01)
                continue
            if self.hold_s:
                self._stop.wait(self.hold_s)
            s.close()


def master_reads(port, n, unit=1, addr=0, count=1, timeout_s=1.0, pause_s=0.05, check=None, stop=None):
    """A legitimate master: n reads, each on a fresh pymodbus connection (connect, read, close).
    -> list of latencies in seconds from connect to answer, None for a read not answered within timeout_s.
    check(registers) -> bool says whether an answer is right (a wrong answer counts as not served)."""
    from pymodbus.client import ModbusTcpClient
    out = []
    for _ in range(n):
        if stop is not None and stop():
            break
        t0 = time.monotonic()
        c = ModbusTcpClient("127.0.0.1", port=port, timeout=timeout_s, retries=0)
        try:
            ok = c.connect()
            r = c.read_holding_registers(addr, count=count, device_id=unit) if ok else None
            served = r is not None and not r.isError() and (check is None or check(r.registers))
        except Exception:  # a refused or closed connection is an unserved read, whatever pymodbus raises
            served = False
        finally:
            c.close()
        dt = time.monotonic() - t0
        out.append(dt if served and dt <= timeout_s else None)
        time.sleep(pause_s)
    return out


def summary(latencies):
    """(served fraction, worst latency of the served reads in ms, count)."""
    got = [x for x in latencies if x is not None]
    frac = len(got) / len(latencies) if latencies else 0.0
    return frac, (max(got) * 1000 if got else None), len(latencies)
