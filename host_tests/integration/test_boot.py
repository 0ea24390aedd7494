import json
import os
import subprocess
import sys
import time

import pytest

from firmware_proc import BOARDS, ROOT, Firmware, micropython_binary

pytestmark = pytest.mark.mp


def test_boots_and_reports_status():
    with Firmware() as fw:
        time.sleep(0.3)
        st = fw.status()
    assert st["board"] == "unix_sim"
    names = {t["name"]: t for t in st["tasks"]}
    assert {"looplag", "watchdog", "ctl"} <= set(names)
    assert all(t["state"] == "running" and t["restarts"] == 0 for t in names.values())
    assert st["loop"]["samples"] > 0
    assert 0 < st["heap"]["alloc"] and st["heap"]["free"] > 0
    assert "ready on board unix_sim" in fw.read_output()


def test_watchdog_is_fed_by_the_running_firmware():
    with Firmware() as fw:
        first = fw.ctl("board")["wdt_feeds"]
        time.sleep(2.2)
        second = fw.ctl("board")["wdt_feeds"]
    assert second >= first + 2


def test_virtual_board_is_driven_from_outside():
    with Firmware() as fw:
        fw.ctl("set_adc", name="cp", mv=9000)
        fw.ctl("set_input", name="load_shed", value=1)
        board = fw.ctl("board")
    assert board["adc_mv"]["cp"] == 9000 and board["inputs"]["load_shed"] == 1


def test_wrong_board_file_is_refused_with_the_field_named(tmp_path):
    with open(os.path.join(BOARDS, "unix_sim.json")) as f:
        b = json.load(f)
    b["pwm"]["cp"]["freq_hz"] = "fast"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(b))
    env = dict(os.environ, LOADPILOT_BOARD=str(bad), LOADPILOT_FS=str(tmp_path))
    p = subprocess.run([micropython_binary(), os.path.join(ROOT, "firmware", "main.py")], env=env,
                       capture_output=True, text=True, timeout=20, cwd=str(tmp_path))
    assert p.returncode == 2
    assert "pwm.cp.freq_hz" in p.stdout and "expected 1..40000 Hz" in p.stdout


def test_sim_shows_its_status_screen(tmp_path):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "sim.py"), "--once", "--fs", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "LoadPilot" in p.stdout and "loop lag" in p.stdout and "heap" in p.stdout
    assert "looplag" in p.stdout and "running" in p.stdout


def test_a_port_two_settings_claim_is_refused_with_both_named():
    from firmware_proc import free_port
    port = free_port()
    with Firmware(config={"modbus_tcp_port": port, "pb_tcp_port": 0, "omcci_tcp_port": port}) as fw:
        fw.wait_port(port)
        names = [t["name"] for t in fw.status()["tasks"]]
    assert "sunspec_tcp" in names and "omcci_tcp" not in names
    assert "omcci_tcp_port: port %d is already used by modbus_tcp_port; omcci not served" % port in fw.read_output()
