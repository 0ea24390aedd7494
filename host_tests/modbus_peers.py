"""Helpers for the Modbus integration tests: run our TCP server app on the MicroPython binary, raw MBAP
frames over plain sockets, and the server-side diagnostics unit (247) of mb_tcp_server_app.py."""
import os
import socket
import struct
import subprocess
import time

import firmware_proc
from firmware_proc import stop_process

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(firmware_proc.ROOT, "build", "peers")
DIAG_UNIT = 247


def mp_env(extra_paths=()):
    paths = [firmware_proc.FIRMWARE] + list(extra_paths) + [".frozen"]
    return dict(os.environ, MICROPYPATH=":".join(paths))


class ServerApp:
    """mb_tcp_server_app.py on the MicroPython binary, on a free port."""

    def __init__(self, max_clients=4, idle_ms=60000, frame_ms=1000):
        self.port = firmware_proc.free_port()
        self.args = [str(self.port), str(max_clients), str(idle_ms), str(frame_ms)]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([firmware_proc.micropython_binary(), os.path.join(HERE, "mb_tcp_server_app.py")]
                                     + self.args, env=mp_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError("server did not start: %s%s" % (line, self.proc.stdout.read()))
        return self

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)
        out = self.proc.stdout.read() if self.proc and self.proc.stdout else ""
        return out

    def connect(self, timeout=5):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


def mbap(tid, unit, pdu, proto=0, length=None):
    return struct.pack(">HHHB", tid, proto, len(pdu) + 1 if length is None else length, unit) + pdu


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def recv_frame(sock):
    """One MBAP frame: (tid, unit, pdu)."""
    head = recv_exact(sock, 7)
    tid, proto, length, unit = struct.unpack(">HHHB", head)
    assert proto == 0
    return tid, unit, recv_exact(sock, length - 1)


def request(sock, unit, pdu, tid=1):
    sock.sendall(mbap(tid, unit, pdu))
    rtid, runit, rpdu = recv_frame(sock)
    assert (rtid, runit) == (tid, unit)
    return rpdu


def read_pdu(fc, addr, qty):
    return struct.pack(">BHH", fc, addr, qty)


def is_closed(sock, timeout=5):
    """True if the peer closes the connection (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def diag_u32(sock, addr):
    pdu = request(sock, DIAG_UNIT, read_pdu(3, addr, 2), tid=0xD1A6)
    assert pdu[:2] == b"\x03\x04", pdu
    return struct.unpack(">I", pdu[2:6])[0]


def heap_now(sock):
    """gc.mem_alloc() inside the server process, no collection."""
    return diag_u32(sock, 0)


def heap_collected(sock):
    """gc.mem_alloc() inside the server process right after gc.collect()."""
    return diag_u32(sock, 2)


def diag_u16(sock, addr):
    pdu = request(sock, DIAG_UNIT, read_pdu(3, addr, 1), tid=0xD1A6)
    assert pdu[:2] == b"\x03\x02", pdu
    return struct.unpack(">H", pdu[2:4])[0]


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()
