"""An RS485 bus on the host: socat links two pseudo-terminals, one end for the firmware's unix-HAL Uart, the
other for a peer (pymodbus, micropython-modbus, or raw pyserial). Also starts the peers as processes."""
import json
import os
import re
import subprocess
import sys
import time

import firmware_proc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = firmware_proc.ROOT
BOARD = os.path.join(ROOT, "boards", "unix_sim.json")
UMODBUS_DIR = os.path.join(ROOT, "build", "peers")


class PtyPair:
    def __init__(self):
        self.proc = subprocess.Popen(["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
                                     stderr=subprocess.PIPE, text=True)
        paths = []
        deadline = time.monotonic() + 10
        while len(paths) < 2 and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(r"PTY is (/dev/pts/\d+)", line)
            if m:
                paths.append(m.group(1))
        if len(paths) < 2:
            self.close()
            raise RuntimeError("socat did not report two ptys")
        self.fw, self.peer = paths  # firmware end, peer end

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def start_micropython(script, pty, args=None, extra_path=()):
    """Run a MicroPython script (text) with firmware/ on its path and the board's rs485_1 on pty; its stdout
    is a pipe of lines."""
    path = os.path.join(_tmpdir(), "mp_%d_%d.py" % (os.getpid(), time.monotonic_ns()))
    with open(path, "w") as f:
        f.write("import sys\n")
        for p in (firmware_proc.FIRMWARE,) + tuple(extra_path):
            f.write("sys.path.insert(0, %r)\n" % p)
        f.write("ARGS = %r\nBOARD = %r\n" % (dict(args or {}), BOARD))
        f.write(script)
    env = dict(os.environ, LOADPILOT_UART_RS485_1=pty)
    return subprocess.Popen([firmware_proc.micropython_binary(), path], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.PIPE, text=True, bufsize=1, env=env)


def step_results(out):
    """The JSON lines a MicroPython peer script printed, by their "step"; asserts it reached "done"."""
    by_step = {}
    for line in out.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            by_step[d["step"]] = d
    assert "done" in by_step, out
    return by_step


def start_python(script_name, *args):
    """Run one of the peer scripts next to this file under the host Python (pymodbus)."""
    return subprocess.Popen([sys.executable, os.path.join(HERE, script_name)] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)


def wait_line(proc, needle, timeout=15):
    """Read proc's output until a line contains needle; return that line (raises with the output if not).
    Reads the pipe's fd directly: select() on a buffered text stream would miss lines already buffered."""
    import selectors
    fd = proc.stdout.fileno()
    pending = getattr(proc, "_pending", b"")
    seen = []
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while True:
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                text = line.decode(errors="replace") + "\n"
                seen.append(text)
                if needle in text:
                    proc._pending = pending
                    return text
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
    finally:
        sel.close()
    proc._pending = pending
    raise AssertionError("no %r in output:\n%s" % (needle, "".join(seen) + pending.decode(errors="replace")))


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    rest = getattr(proc, "_pending", b"").decode(errors="replace")
    if proc.stdout and not proc.stdout.closed:
        rest += proc.stdout.read()
    return rest


def _tmpdir():
    import tempfile
    return tempfile.gettempdir()
