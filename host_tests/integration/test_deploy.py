"""`tools/deploy.py --resume` into a MicroPython unix-port REPL on a pseudo-terminal (the "device", see
repl_device.py), then boot what landed there on the real binary."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import firmware_proc
from repl_device import ReplDevice

ROOT = firmware_proc.ROOT
DEPLOY = os.path.join(ROOT, "tools", "deploy.py")

pytestmark = pytest.mark.mp
LEFT_OUT = "loadpilot/log.mpy"  # the module a seeded() device lacks


def package_files():
    out = ["main.py", "board.json"]
    pkg = os.path.join(firmware_proc.FIRMWARE, "loadpilot")
    for dirpath, dirnames, filenames in os.walk(pkg):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in filenames:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), firmware_proc.FIRMWARE)
                out.append(rel.replace(os.sep, "/")[:-3] + ".mpy")
    return sorted(out + web_files())


def web_files():
    """The gzipped web files (tools/www.py) every deploy copies, frozen image or not."""
    out = []
    for dirpath, _, filenames in os.walk(os.path.join(firmware_proc.FIRMWARE, "www")):
        for f in filenames:
            rel = os.path.relpath(os.path.join(dirpath, f), os.path.join(firmware_proc.FIRMWARE, "www"))
            out.append("www/" + rel.replace(os.sep, "/") + ".gz")
    return sorted(out)


def run_deploy(dev, build_dir, *extra):
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, DEPLOY, "--port", dev.port, "--resume", "--build-dir", build_dir] +
                       list(extra), capture_output=True, text=True, timeout=120, cwd=ROOT)
    p.seconds = time.monotonic() - t0
    p.copied = sorted(line.split()[1] for line in p.stdout.splitlines() if line.startswith("  copy "))
    p.deleted = sorted(line.split()[1] for line in p.stdout.splitlines() if line.startswith("  delete "))
    return p


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    if not shutil.which("socat"):
        pytest.skip("socat missing: run `make setup`")
    base = str(tmp_path_factory.mktemp("deploy"))
    dev = ReplDevice(base)
    dev.build_dir = os.path.join(base, "build-mpy")
    yield dev
    dev.stop()


def baseline(dev):
    """The shared device with the current tree on it, whatever ran before."""
    p = run_deploy(dev, dev.build_dir, "--board", "unix_sim", "--no-reset")
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def boot(dev):
    return firmware_proc.Firmware(board=os.path.join(dev.fs_dir, "board.json"), fs_dir=dev.fs_dir,
                                  main=os.path.join(dev.fs_dir, "main.py"))


def test_first_deploy_copies_the_compiled_tree_and_it_boots(device):
    p = run_deploy(device, device.build_dir, "--board", "unix_sim", "--no-reset")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.copied == package_files()
    print("first deploy: %d files in %.1f s" % (len(p.copied), p.seconds))
    fs = device.fs_dir
    on_device = sorted(os.path.relpath(os.path.join(d, f), fs).replace(os.sep, "/")
                       for d, _, files in os.walk(fs) for f in files)
    assert on_device == sorted(package_files() + ["config.json", ".loadpilot-manifest.json"])
    with open(os.path.join(fs, "config.json")) as f:
        assert json.load(f) == {}
    with open(os.path.join(fs, "board.json")) as f:
        assert json.load(f)["name"] == "unix_sim"
    manifest = json.load(open(os.path.join(fs, ".loadpilot-manifest.json")))
    assert sorted(manifest["files"]) == package_files()
    # the package is .mpy only, so the interpreter can only have loaded the compiled files
    with boot(device) as fw:
        assert fw.wait_output("ready on board unix_sim")
        st = fw.status()
        assert st["board"] == "unix_sim"
        tasks = {t["name"]: t for t in st["tasks"]}
        assert {"looplag", "watchdog", "ctl"} <= set(tasks)
        assert all(t["restarts"] == 0 and t["last_error"] is None for t in tasks.values()), tasks


def test_second_deploy_copies_nothing(device):
    baseline(device)
    p = run_deploy(device, device.build_dir, "--board", "unix_sim", "--no-reset")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.copied == [] and p.deleted == []
    assert "device is up to date" in p.stdout
    print("second deploy: 0 files in %.1f s" % p.seconds)


def test_a_changed_board_file_is_copied_alone_and_boots(device, tmp_path):
    board = json.load(open(os.path.join(ROOT, "boards", "unix_sim.json")))
    board["name"] = "unix_sim_renamed"
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps(board))
    baseline(device)
    mtimes = {f: os.stat(os.path.join(device.fs_dir, f)).st_mtime_ns for f in package_files()}
    p = run_deploy(device, device.build_dir, "--board", str(path), "--no-reset")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.copied == ["board.json"]
    untouched = [f for f in package_files() if f != "board.json"]
    assert all(os.stat(os.path.join(device.fs_dir, f)).st_mtime_ns == mtimes[f] for f in untouched)
    with boot(device) as fw:
        assert fw.status()["board"] == "unix_sim_renamed"


def test_a_damaged_or_stray_file_on_the_device_is_repaired(device):
    baseline(device)
    fs = device.fs_dir
    with open(os.path.join(fs, "loadpilot", "log.mpy"), "ab") as f:
        f.write(b"garbage")  # a copy cut short or edited by hand: the size no longer matches the manifest
    stray = os.path.join(fs, "loadpilot", "app.py")  # a source file here would shadow app.mpy
    with open(stray, "w") as f:
        f.write("raise ImportError('stale source')\n")
    with open(os.path.join(fs, "config.json"), "w") as f:
        f.write('{"keep": 1}\n')
    p = run_deploy(device, device.build_dir, "--board", "unix_sim", "--no-reset")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.copied == ["loadpilot/log.mpy"]
    assert p.deleted == ["loadpilot/app.py"]
    assert not os.path.exists(stray)
    assert json.load(open(os.path.join(fs, "config.json"))) == {"keep": 1}  # the installer's config stays
    with boot(device) as fw:
        assert fw.status()["board"] == "unix_sim"


def seeded(device, base, missing=LEFT_OUT):
    """A second device holding the files a deploy of the current tree left on the shared one (its manifest and
    what that lists) less the module `missing`: copied on the host (a whole copy through mpremote takes 20 s; the
    first deploy test makes one), so a deploy to it copies that one module."""
    baseline(device)
    dev = ReplDevice(base)
    manifest = ".loadpilot-manifest.json"
    for rel in list(json.load(open(os.path.join(device.fs_dir, manifest)))["files"]) + [manifest]:
        if rel != missing:
            os.makedirs(os.path.dirname(os.path.join(dev.fs_dir, rel)), exist_ok=True)
            shutil.copy2(os.path.join(device.fs_dir, rel), os.path.join(dev.fs_dir, rel))
    return dev


def test_a_configuration_the_store_already_imported_is_left_alone(device, tmp_path):
    # what the config store leaves after its first boot: config.json renamed, the configuration in its slots
    with seeded(device, str(tmp_path)) as dev:
        fs = dev.fs_dir
        for name in ("config.json.imported", "lpconfig.a"):
            with open(os.path.join(fs, name), "w") as f:
                f.write("stored\n")
        p = run_deploy(dev, str(tmp_path / "build-mpy"), "--board", "unix_sim", "--no-reset")
        assert p.returncode == 0, p.stdout + p.stderr
        assert p.copied == [LEFT_OUT] and "config.json (defaults)" not in p.stdout  # the package, not the config
        assert not os.path.exists(os.path.join(fs, "config.json"))
        assert open(os.path.join(fs, "lpconfig.a")).read() == "stored\n"


def test_dry_run_writes_nothing_and_reset_is_tolerated_by_the_repl(device):
    baseline(device)
    os.remove(os.path.join(device.fs_dir, "main.py"))
    p = run_deploy(device, device.build_dir, "--board", "unix_sim", "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.copied == ["main.py"] and "dry run: nothing written" in p.stdout
    assert not os.path.exists(os.path.join(device.fs_dir, "main.py"))
    # with the reset step: the unix REPL has no machine.reset, which is reported, not claimed
    p = run_deploy(device, device.build_dir, "--board", "unix_sim")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.copied == ["main.py"]
    assert "did not reset (it has no machine.reset)" in p.stdout
    assert device.alive()
    p = run_deploy(device, device.build_dir, "--board", "unix_sim", "--no-reset")
    assert p.returncode == 0 and p.copied == [], p.stdout + p.stderr


def test_clear_errors_for_a_missing_port_and_an_unknown_board(tmp_path):
    p = subprocess.run([sys.executable, DEPLOY, "--board", "unix_sim"], capture_output=True, text=True)
    assert p.returncode == 2 and "no port given" in p.stderr
    p = subprocess.run([sys.executable, DEPLOY, "--port", str(tmp_path / "ttyNONE"), "--board", "unix_sim"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "ttyNONE not found" in p.stderr
    p = subprocess.run([sys.executable, DEPLOY, "--port", "/dev/null", "--board", "esp32_devkt"],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "unknown board 'esp32_devkt' (known: esp32_devkit, esp32_wrover, esp32s3_psram, unix_sim)" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "hal": "esp32", "uarts": {"rs485_1": {"id": 2, "tx": "GPIO17"}}}))
    p = subprocess.run([sys.executable, DEPLOY, "--port", "/dev/null", "--board", str(bad)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "board uarts.rs485_1.tx: expected a GPIO number" in p.stderr


def _run_query(tmp_path, with_fakes):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import deploy
    finally:
        sys.path.pop(0)
    code = "import sys\n"
    if with_fakes:
        code += "sys.path.insert(0, %r)\n" % os.path.join(os.path.dirname(os.path.dirname(__file__)), "mp_fakes")
    code += deploy.query_script(600000)
    if with_fakes:
        code += "\nimport machine\nprint('timeouts', machine.WDT.timeouts)\n"
    script = tmp_path / "q.py"
    script.write_text(code)
    p = subprocess.run([firmware_proc.micropython_binary(), str(script)], capture_output=True, text=True,
                       cwd=str(tmp_path), timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    line = [l for l in p.stdout.splitlines() if l.startswith(deploy.MARK)][0]
    return json.loads(line[len(deploy.MARK):]), p.stdout


def test_the_device_query_stretches_a_running_watchdog_over_the_copy(tmp_path):
    # on a board with machine.WDT (here the fake ESP32 machine module) the app's watchdog would reset the
    # board mid-copy once mpremote has stopped the app: the query sets it to the deploy's budget
    state, out = _run_query(tmp_path, with_fakes=True)
    assert state["wdt"] == 600000 and "timeouts [600000]" in out
    assert state["config"] == [] and state["manifest"] == {}
    # the unix port has no machine.WDT: nothing to stretch, nothing claimed
    state, _ = _run_query(tmp_path, with_fakes=False)
    assert state["wdt"] is None



# ---- deploy knows the board: a frozen-tier board (esp32_devkit) needs an image with LoadPilot frozen in

def device_files(fs):
    return sorted(os.path.relpath(os.path.join(d, f), fs).replace(os.sep, "/")
                  for d, _, files in os.walk(fs) for f in files)


def simulate_frozen_image(dev):
    """No frozen build in CI: make the REPL answer as a frozen image does. This binary's frozen asyncio has
    __file__ "asyncio/__init__.py", a path with no file behind it; so a stub module whose __file__ is
    "loadpilot/__init__.py" (absent from the device's filesystem) goes into sys.modules under "loadpilot"
    before the deploy asks. The REPL lives on across mpremote calls (resume), so the deploy's query sees it."""
    with open(os.path.join(dev.fs_dir, "frozen_sim.py"), "w") as f:
        f.write("__file__ = 'loadpilot/__init__.py'\nVERSION = '0.1.0'\n")
    subprocess.run([sys.executable, "-m", "mpremote", "connect", dev.port, "resume", "exec",
                    "import sys, frozen_sim\nsys.modules['loadpilot'] = frozen_sim"],
                   check=True, capture_output=True, timeout=60)
    os.remove(os.path.join(dev.fs_dir, "frozen_sim.py"))  # only the module in the REPL's memory stays


def test_a_frozen_tier_board_without_a_frozen_image_is_refused_naming_make_firmware(tmp_path):
    with ReplDevice(str(tmp_path)) as dev:
        p = run_deploy(dev, str(tmp_path / "build-mpy"), "--board", "esp32_devkit", "--no-reset")
        assert p.returncode == 2, p.stdout + p.stderr
        assert "board esp32_devkit needs a firmware image with LoadPilot frozen in: 112 KB of heap" in p.stderr
        assert "has no LoadPilot in its firmware image" in p.stderr
        assert "make firmware BOARD=esp32_devkit" in p.stderr and "Nothing was written" in p.stderr
        assert device_files(dev.fs_dir) == [] and dev.alive()


def test_a_frozen_tier_board_with_a_mpy_deploy_is_refused_too(device):
    baseline(device)  # the stock .mpy deploy: loadpilot/__init__.mpy on the filesystem
    before = device_files(device.fs_dir)
    p = run_deploy(device, device.build_dir, "--board", "esp32_devkit", "--no-reset")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "runs LoadPilot from loadpilot/__init__.mpy on its filesystem (a .mpy deploy)" in p.stderr
    assert "make firmware" in p.stderr
    assert device_files(device.fs_dir) == before
    assert json.load(open(os.path.join(device.fs_dir, "board.json")))["name"] == "unix_sim"


def test_a_frozen_image_gets_the_board_file_and_the_configuration_only(tmp_path):
    with ReplDevice(str(tmp_path)) as dev:
        simulate_frozen_image(dev)
        p = run_deploy(dev, str(tmp_path / "build-mpy"), "--board", "esp32_devkit", "--no-reset")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "device runs LoadPilot frozen into its firmware image: board.json, the web files and the " \
               "configuration only" in p.stdout
        assert "mpy-cross" not in p.stdout and p.copied == sorted(["board.json"] + web_files())
        assert device_files(dev.fs_dir) == sorted([".loadpilot-manifest.json", "board.json", "config.json"]
                                                  + web_files())
        assert json.load(open(os.path.join(dev.fs_dir, "board.json")))["name"] == "esp32_devkit"
        p = run_deploy(dev, str(tmp_path / "build-mpy"), "--board", "esp32_devkit", "--no-reset")
        assert p.returncode == 0 and "device is up to date" in p.stdout, p.stdout + p.stderr


def test_a_psram_board_keeps_the_mpy_deploy_on_stock_micropython(device, tmp_path):
    with seeded(device, str(tmp_path)) as dev:
        p = run_deploy(dev, str(tmp_path / "build-mpy"), "--board", "esp32s3_psram", "--no-reset")
        assert p.returncode == 0, p.stdout + p.stderr
        assert p.copied == sorted(["board.json", LEFT_OUT]) and "compiled" in p.stdout
        # the .mpy package stays and is the deploy's (a frozen-image deploy would have deleted it)
        assert device_files(dev.fs_dir) == sorted(package_files() + ["config.json", ".loadpilot-manifest.json"])
        assert sorted(json.load(open(os.path.join(dev.fs_dir, ".loadpilot-manifest.json")))["files"]) == \
            package_files()
        assert json.load(open(os.path.join(dev.fs_dir, "board.json")))["name"] == "esp32s3_psram"
