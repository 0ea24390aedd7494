"""A MicroPython unix-port REPL on a pseudo-terminal, standing for a board that mpremote talks to.

socat runs the REPL on a pty in fs_dir, the directory that stands for the board's filesystem. mpremote maps a
relative `:path` to the REPL's current directory (and `:/x` to the host's /x, so keep remote paths relative).
Use `mpremote connect PORT resume ...`: a soft reset (Ctrl-D in the raw REPL) ends the unix interpreter.
Used by the deploy test and tools/bench/deploy.py."""
import os
import subprocess
import time

import firmware_proc
from firmware_proc import stop_process


class ReplDevice:
    def __init__(self, base):
        self.fs_dir = os.path.join(base, "device-fs")
        os.makedirs(self.fs_dir)
        self.port = os.path.join(base, "ttyDEV")  # outside fs_dir, so it is not a file "on the device"
        self.proc = subprocess.Popen(
            ["socat", "PTY,link=%s,raw,echo=0" % self.port,
             "EXEC:%s,pty,raw,echo=0" % firmware_proc.micropython_binary()],
            cwd=self.fs_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("socat did not create the pty: %s" % self.proc.stderr.read())
            time.sleep(0.02)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
