"""Deploy time into a MicroPython unix-port REPL on a pty (host_tests/repl_device.py), measured next to the
baseline it must beat in the same run: copying every file with plain `mpremote fs cp`, no manifest.

Prints the first deploy (everything), the second (nothing changed: the bar is 0 files copied), and one
changed file. A real ESP32 at 115200 Bd is slower per byte; the file counts are what carry over."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
from repl_device import ReplDevice  # noqa: E402

DEPLOY = os.path.join(ROOT, "tools", "deploy.py")


def deploy(dev, build_dir, board="unix_sim"):
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, DEPLOY, "--port", dev.port, "--resume", "--no-reset", "--build-dir",
                        build_dir, "--board", board], capture_output=True, text=True, timeout=300)
    secs = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("deploy failed:\n" + p.stdout + p.stderr)
    copied = [line.split()[1] for line in p.stdout.splitlines() if line.startswith("  copy ")]
    return secs, copied


def naive_copy(dev, build_dir):
    """The baseline: every file, every time, in one mpremote process (what a Makefile without a manifest does)."""
    dirs = sorted(os.path.relpath(d, build_dir) for d, _, _ in os.walk(os.path.join(build_dir, "loadpilot")))
    cmds = ["exec", "import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n"
                    "    except OSError:\n        pass\n" % (tuple(dirs),)]
    n = 0
    for dirpath, _, files in os.walk(os.path.join(build_dir, "loadpilot")):
        for f in sorted(files):
            local = os.path.join(dirpath, f)
            cmds += ["+", "fs", "cp", local, ":" + os.path.relpath(local, build_dir)]
            n += 1
    for local, remote in ((os.path.join(ROOT, "firmware", "main.py"), "main.py"),
                          (os.path.join(ROOT, "boards", "unix_sim.json"), "board.json")):
        cmds += ["+", "fs", "cp", local, ":" + remote]
        n += 1
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "mpremote", "connect", dev.port, "resume"] + cmds, check=True,
                   capture_output=True, timeout=300)
    return time.monotonic() - t0, n


def main():
    base = tempfile.mkdtemp(prefix="loadpilot-bench-deploy-")
    build = os.path.join(base, "build-mpy")
    try:
        with ReplDevice(base) as dev:
            first, copied1 = deploy(dev, build)
            second, copied2 = deploy(dev, build)
            board = json.load(open(os.path.join(ROOT, "boards", "unix_sim.json")))
            board["name"] = "unix_sim_bench"
            changed_board = os.path.join(base, "changed.json")
            with open(changed_board, "w") as f:
                json.dump(board, f)
            third, copied3 = deploy(dev, build, changed_board)
        with ReplDevice(os.path.join(base, "naive")) as dev:
            naive1, n1 = naive_copy(dev, build)
            naive2, n2 = naive_copy(dev, build)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("deploy into the unix-port REPL on a pty (mpremote resume), whole tool incl. mpy-cross:")
    print("  first deploy     %5.2f s  %2d files copied" % (first, len(copied1)))
    print("  unchanged        %5.2f s  %2d files copied   (bar: 0)" % (second, len(copied2)))
    print("  one changed file %5.2f s  %2d files copied   (%s)" % (third, len(copied3), ", ".join(copied3)))
    print("baseline, plain mpremote fs cp of every file, same run:")
    print("  first copy       %5.2f s  %2d files" % (naive1, n1))
    print("  again            %5.2f s  %2d files" % (naive2, n2))
    ok = len(copied2) == 0 and len(copied3) == 1 and second < naive2
    print("verdict: %s" % ("ok: an unchanged tree copies nothing and takes less than a full copy" if ok else
                           "FAILED: the manifest did not save work"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
