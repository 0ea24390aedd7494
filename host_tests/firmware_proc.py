"""Boot the firmware under the real MicroPython unix binary and talk to it over its control socket.

Used by the integration tests, `make sim` and the benchmarks, so all three boot the firmware the same way.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
FIRMWARE = os.path.join(ROOT, "firmware")
BOARDS = os.path.join(ROOT, "boards")


def micropython_binary():
    venv_bin = os.path.join(ROOT, ".venv", "bin", "micropython")
    if os.path.exists(venv_bin):
        return venv_bin
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("MicroPython unix binary not found: run `make setup`")
    return found


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_ports(n):
    """A port p with p .. p+n-1 all free on loopback (the Power Brain map takes its port and the next two)."""
    for _ in range(50):
        p = free_port()
        if p + n > 65535:
            continue
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", p + i))
                socks.append(s)
            return p
        except OSError:
            pass
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no %d consecutive free ports" % n)


def wait_for(fn, timeout=10.0, step=0.05):
    """Poll fn until it returns something true; return that, or the last (false) value after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def wait_until(fn, timeout=10.0, step=0.05):
    """Like wait_for, but a timeout raises AssertionError (for calls that are not wrapped in an assert)."""
    v = wait_for(fn, timeout, step)
    if not v:
        raise AssertionError("condition not met within %.1f s (last %r)" % (timeout, v))
    return v


def stop_process(proc, timeout=5):
    """Terminate a child process, and kill it if it has not ended within timeout seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _has_stored_config(fs_dir):
    return any(os.path.exists(os.path.join(fs_dir, n)) for n in ("lpconfig.a", "lpconfig.b"))


class Firmware:
    """One firmware process. fs_dir stands for the device's filesystem (config lives there)."""

    def __init__(self, board="unix_sim", fs_dir=None, env=None, main=None, ctl=True, mp_args=(), config=None,
                 binary=None, patch=None):
        self.board = board if os.path.isabs(board) else os.path.join(BOARDS, board + ".json")
        self._tmp = None
        if fs_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="loadpilot-fs-")
            fs_dir = self._tmp
        self.fs_dir = fs_dir
        # an installer-style config.json, imported at first boot; every server gets a free port so that
        # firmware instances never collide (pass config={} to boot on the documented defaults)
        # (a config.json the caller already put there, or a stored configuration, is left alone)
        installer_file = os.path.join(fs_dir, "config.json")
        self.sunspec_port = None
        if not os.path.exists(installer_file) and not _has_stored_config(fs_dir):
            if config is None:
                config = {"modbus_tcp_port": free_port(), "pb_tcp_port": 0}
            self.sunspec_port = config.get("modbus_tcp_port", 1502)
            if config:
                with open(installer_file, "w") as f:
                    json.dump(config, f)
        # main: the boot script's path, or a list of interpreter arguments (["-m", "main"] runs a frozen main.py)
        self.main = main or os.path.join(FIRMWARE, "main.py")
        # binary: the MicroPython unix binary to run (default: the venv's; e.g. a 32-bit build with a frozen image)
        self.binary = binary
        self.ctl_port = free_port() if ctl else None
        self.env = dict(os.environ)
        self.env.update({"LOADPILOT_BOARD": self.board, "LOADPILOT_FS": fs_dir})
        if ctl:
            self.env["LOADPILOT_CTL"] = "127.0.0.1:%d" % self.ctl_port
        self.env.update(env or {})
        if patch:  # MicroPython code run before main.py (mp_patched_main.py), e.g. a shorter firmware delay
            self.main = os.path.join(HERE, "mp_patched_main.py")
            self.env.update({"LOADPILOT_TEST_PATCH": patch, "LOADPILOT_TEST_FIRMWARE": FIRMWARE})
        self.mp_args = list(mp_args)  # e.g. ["-X", "heapsize=4M"]
        self.proc = None
        self._reader = None
        self.output = []
        self._sock = None
        self._rfile = None

    def start(self, wait_ready=True, timeout=10):
        main = list(self.main) if isinstance(self.main, (list, tuple)) else [self.main]
        self.proc = subprocess.Popen([self.binary or micropython_binary()] + self.mp_args + main, cwd=self.fs_dir,
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     bufsize=1)
        # a reader thread owns stdout: select() on a buffered pipe misses lines already in the buffer
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        if wait_ready and self.ctl_port:
            self._connect(timeout)
        return self

    def _connect(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("firmware exited %s:\n%s" % (self.proc.returncode, self.read_output()))
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.ctl_port), timeout=2)
                self._rfile = self._sock.makefile("rb")
                return
            except OSError:
                if time.monotonic() > deadline:
                    out = self.read_output()
                    self.stop()  # a firmware nobody can talk to must not outlive the test holding its ports
                    raise RuntimeError("firmware control socket never came up:\n" + out)
                time.sleep(0.05)

    def ctl(self, op, **args):
        """Send one control request and return its result; raises on an error reply."""
        req = dict(args, op=op)
        self._sock.sendall(json.dumps(req).encode() + b"\n")
        line = self._rfile.readline()
        if not line:
            raise RuntimeError("control socket closed:\n" + self.read_output())
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError("ctl %s: %s" % (op, reply["error"]))
        return reply["ok"]

    def status(self):
        return self.ctl("status")

    def wait_port(self, port, timeout=10):
        """Wait until a server of the firmware accepts connections on port (its tasks start after ctl)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    out = self.read_output()
                    self.stop()  # as above: the caller never gets a firmware to stop
                    raise RuntimeError("nothing listens on port %d:\n%s" % (port, out))
                time.sleep(0.05)

    def _pump(self):
        for line in self.proc.stdout:
            self.output.append(line)

    def read_output(self):
        """Everything the firmware printed so far."""
        if self.proc and self.proc.poll() is not None and self._reader is not None:
            self._reader.join(2)
        return "".join(self.output)

    def wait_output(self, needle, timeout=10):
        """Wait until a printed line contains needle. -> True, or False after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in list(self.output)):
                return True
            if self.proc.poll() is not None:
                self.read_output()
                return any(needle in line for line in self.output)
            time.sleep(0.02)
        return False

    def stop(self):
        if self._sock:
            self._sock.close()
            self._sock = None
        stop_process(self.proc)
        if self.proc:
            self.read_output()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc):
        self.stop()


def run_snippet(code, timeout=30, cwd=None, env=None):
    """Run a MicroPython snippet with firmware/ on its path; return (returncode, output)."""
    fd, path = tempfile.mkstemp(suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write("import sys\nsys.path.insert(0, %r)\n" % FIRMWARE)
        f.write(code)
    try:
        p = subprocess.run([micropython_binary(), path], capture_output=True, text=True, timeout=timeout,
                           cwd=cwd, env=dict(os.environ, **(env or {})))
        return p.returncode, p.stdout + p.stderr
    finally:
        os.unlink(path)


if __name__ == "__main__":
    sys.exit("import this module; see host_tests/README.md")
