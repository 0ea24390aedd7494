#!/usr/bin/env python3
"""Build LoadPilot's frozen firmware image: `make firmware BOARD=esp32_devkit MICROPY_DIR=~/micropython`.

MICROPY_DIR is a MicroPython source tree (a release tag, with the submodules the ports need). The build freezes
firmware/loadpilot and main.py (boards/manifest.py) into:

- the unix port in 32-bit mode, always: the ESP32's word size on the host, for tests and tools/bench/heap.py
  (build/unix32/frozen/micropython);
- the ESP32 image, for a board whose "hal" is "esp32", when ESP-IDF is installed and exported (IDF_PATH):
  build/esp32/<board>/firmware.bin.

Every prerequisite is checked before anything is built: a missing one stops the build at once with a message
that says what to install. Nothing of MICROPY_DIR is copied into this repository; outputs go under build/.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = os.path.join(ROOT, "boards")
BUILD = os.path.join(ROOT, "build")
# the unix port at the ESP32's word size; FFI and btree are off as on the ESP32 (and need no 32-bit libffi)
UNIX32_VARS = ["MICROPY_FORCE_32BIT=1", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0"]
# LoadPilot board -> (MicroPython ESP32 board, variant), built with our frozen manifest: a stock board definition
# of the port, or our own (boards/<board>/ holds mpconfigboard.cmake: the stock settings plus an sdkconfig
# fragment, sdkconfig.loadpilot, e.g. more lwIP sockets).
ESP32_BOARDS = {"esp32_devkit": ("ESP32_GENERIC", ""), "esp32s3_psram": ("ESP32_GENERIC_S3", "SPIRAM_OCT")}
ESP_IDF_SOCKETS = 10  # ESP-IDF's default CONFIG_LWIP_MAX_SOCKETS: what a stock board definition gets


class BuildError(Exception):
    pass


def _need(cond, msg):
    if not cond:
        raise BuildError(msg)


def check_source(mp_dir):
    """A MicroPython source tree with what the unix port needs: micropython-lib (frozen asyncio's neighbours,
    the manifests' require()) and mbedtls (the unix port's ssl)."""
    _need(mp_dir, "MICROPY_DIR is not set: clone MicroPython (a release tag, e.g. v1.28.0) and its submodules,\n"
                  "  git clone -b v1.28.0 https://github.com/micropython/micropython ~/micropython\n"
                  "  make -C ~/micropython/ports/unix submodules\n"
                  "then run: make firmware BOARD=... MICROPY_DIR=~/micropython")
    mp_dir = os.path.abspath(os.path.expanduser(mp_dir))
    _need(os.path.isfile(os.path.join(mp_dir, "py", "mkenv.mk")) and os.path.isdir(os.path.join(mp_dir, "ports", "unix")),
          "%s is not a MicroPython source tree (no py/mkenv.mk, ports/unix)" % mp_dir)
    for sub, what in (("micropython-lib", "micropython-lib"), ("mbedtls", "mbedtls")):
        d = os.path.join(mp_dir, "lib", sub)
        _need(os.path.isdir(d) and os.listdir(d),
              "%s is empty: the unix port needs the %s submodule (make -C %s/ports/unix submodules)" % (d, what, mp_dir))
    return mp_dir


def check_multilib():
    """gcc that can build and link 32-bit x86 programs (Debian: gcc-multilib)."""
    _need(shutil.which("gcc") and shutil.which("make"), "gcc and make are missing: apt-get install build-essential")
    tmp = tempfile.mkdtemp(prefix="lp-m32-")
    try:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write("#include <stdio.h>\n#include <math.h>\nint main(void){printf(\"%f\", sqrt(2.0));return 0;}\n")
        p = subprocess.run(["gcc", "-m32", src, "-lm", "-o", os.path.join(tmp, "t")], capture_output=True, text=True)
        _need(p.returncode == 0, "gcc cannot build 32-bit programs: apt-get install gcc-multilib\n" + p.stderr[-500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_board(name):
    path = os.path.join(BOARDS, name + ".json")
    if not os.path.isfile(path):
        known = sorted(f[:-5] for f in os.listdir(BOARDS) if f.endswith(".json"))
        raise BuildError("unknown board %r (known: %s)" % (name, ", ".join(known)))
    with open(path) as f:
        return json.load(f)


def check_idf(board):
    """-> (MicroPython board, variant) for an ESP32 board; BuildError when ESP-IDF is not there."""
    _need(board in ESP32_BOARDS, "no ESP32 board definition mapped for %s (tools/firmware.py ESP32_BOARDS)" % board)
    idf = os.environ.get("IDF_PATH")
    _need(idf and os.path.isdir(idf) and shutil.which("idf.py"),
          "the ESP32 image needs ESP-IDF (the version the MicroPython release names in ports/esp32/README.md):\n"
          "  install it, run its export.sh (sets IDF_PATH and puts idf.py on PATH), then make firmware again.\n"
          "  Nothing was built. Without ESP-IDF, BOARD=unix_sim builds only the 32-bit unix port.")
    return ESP32_BOARDS[board]


def board_dir(board):
    """Our own MicroPython board definition for a LoadPilot board (boards/<board>/mpconfigboard.cmake), or None
    when the port's stock definition is used."""
    d = os.path.join(BOARDS, board)
    return d if os.path.isfile(os.path.join(d, "mpconfigboard.cmake")) else None


def sdkconfig_value(path, key):
    """The value a sdkconfig fragment sets for key (CONFIG_...), or None."""
    with open(path) as f:
        for line in f:
            k, eq, v = line.strip().partition("=")
            if eq and k == key:
                return v
    return None


def check_sockets(board, spec):
    """The board file's "sockets" must be the image's CONFIG_LWIP_MAX_SOCKETS: the configuration store keeps
    the board's figure, and lwIP enforces the image's. -> None; BuildError when they differ."""
    d = board_dir(board)
    frag = os.path.join(d, "sdkconfig.loadpilot") if d else None
    image = ESP_IDF_SOCKETS
    if frag and os.path.isfile(frag):
        v = sdkconfig_value(frag, "CONFIG_LWIP_MAX_SOCKETS")
        image = int(v) if v is not None else ESP_IDF_SOCKETS
    declared = spec.get("sockets", 10)
    _need(declared == image, "boards/%s.json says \"sockets\": %s but the image gets CONFIG_LWIP_MAX_SOCKETS=%d "
                             "(%s): make them the same figure" % (board, declared, image,
                                                                  os.path.relpath(frag, ROOT) if frag else
                                                                  "ESP-IDF's default, no sdkconfig fragment"))


def _stamp_ok(build_dir, mp_dir, manifest):
    """Reuse a build dir only if it was made from the same source tree and manifest (else start clean)."""
    stamp = os.path.join(build_dir, "loadpilot-build.json")
    want = {"micropython_dir": mp_dir, "manifest": manifest, "vars": UNIX32_VARS}
    try:
        with open(stamp) as f:
            if json.load(f) == want:
                return stamp, want
    except (OSError, ValueError):
        pass
    shutil.rmtree(build_dir, ignore_errors=True)
    return stamp, want


def build_unix32(mp_dir, frozen=True, quiet=False):
    """Build (or bring up to date) the 32-bit unix port; frozen=False keeps the port's own manifest only.
    -> path of the binary."""
    build_dir = os.path.join(BUILD, "unix32", "frozen" if frozen else "mpy")
    manifest = os.path.join(BOARDS, "manifest_unix.py") if frozen else ""
    stamp, want = _stamp_ok(build_dir, mp_dir, manifest)
    cmd = ["make", "-C", os.path.join(mp_dir, "ports", "unix"), "-j%d" % (os.cpu_count() or 2), "VARIANT=standard",
           "BUILD=" + build_dir] + UNIX32_VARS
    if frozen:
        cmd.append("FROZEN_MANIFEST=" + manifest)
    _run(cmd, quiet)
    os.makedirs(build_dir, exist_ok=True)
    with open(stamp, "w") as f:
        json.dump(want, f)
    return os.path.join(build_dir, "micropython")


def build_esp32(mp_dir, board, idf_board, quiet=False):
    mp_board, variant = idf_board
    build_dir = os.path.join(BUILD, "esp32", board)
    own = board_dir(board)  # our board definition (its sdkconfig fragment on top of mp_board's settings)
    cmd = ["make", "-C", os.path.join(mp_dir, "ports", "esp32"), "BOARD_DIR=" + own if own else "BOARD=" + mp_board,
           "BUILD=" + build_dir, "FROZEN_MANIFEST=" + os.path.join(BOARDS, "manifest_esp32.py")]
    if variant:
        cmd.append("BOARD_VARIANT=" + variant)
    _run(cmd, quiet)
    return os.path.join(build_dir, "firmware.bin")


def _run(cmd, quiet):
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL if quiet else None,
                       stderr=subprocess.PIPE if quiet else None, text=True)
    if p.returncode != 0:
        raise BuildError("build failed (%s):\n%s" % (" ".join(cmd[:3]), (p.stderr or "")[-3000:]))


def mpy_cross_build(mp_dir, quiet=False):
    """The source tree's own mpy-cross: the unix port builds it for a frozen manifest anyway."""
    _run(["make", "-C", os.path.join(mp_dir, "mpy-cross"), "-j%d" % (os.cpu_count() or 2)], quiet)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--board", default="esp32_devkit")
    ap.add_argument("--micropython-dir", default=os.environ.get("MICROPY_DIR", ""))
    a = ap.parse_args(argv)
    try:
        # every check first: a missing prerequisite stops before anything is built
        board = load_board(a.board)
        mp_dir = check_source(a.micropython_dir)
        check_multilib()
        idf_board = None
        if board.get("hal") == "esp32":
            check_sockets(a.board, board)
            idf_board = check_idf(a.board)
        mpy_cross_build(mp_dir)
        outputs = [("unix port, 32-bit, frozen", build_unix32(mp_dir, frozen=True))]
        if idf_board:
            outputs.append(("ESP32 image (%s)" % a.board, build_esp32(mp_dir, a.board, idf_board)))
    except BuildError as e:
        print("make firmware: %s" % e, file=sys.stderr)
        return 2
    for what, path in outputs:
        print("%-30s %s" % (what, os.path.relpath(path, ROOT)))
    if idf_board:
        print("flash it: docs/firmware.md (esptool write_flash, then make deploy PORT=... BOARD=%s)" % a.board)
    return 0


if __name__ == "__main__":
    sys.exit(main())
