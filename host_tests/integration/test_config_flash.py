"""The config store on the real MicroPython binary, on littlefs over the counting, power-cuttable flash model
(hal/flashdev.py). The day-long runs use a simulated clock; figures for humans: tools/bench/flash_wear.py."""
import json
import os
import subprocess
import tempfile

import pytest

import firmware_proc

HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = pytest.mark.mp


def run_mp(code, timeout=120, heap="16M"):
    """Run code on the binary with firmware/ and this folder on the path; -> (rc, output, [RESULT dicts]).
    The default heap holds the several 256 KB flash images of the power-cut run; heap=None: the binary's own."""
    fd, path = tempfile.mkstemp(suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write("import sys\nsys.path.insert(0, %r)\nsys.path.insert(0, %r)\n" % (firmware_proc.FIRMWARE, HERE))
        f.write(code)
    try:
        p = subprocess.run([firmware_proc.micropython_binary()] + (["-X", "heapsize=" + heap] if heap else []) +
                           [path], capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(path)
    out = p.stdout + p.stderr
    results = [json.loads(l[7:]) for l in out.splitlines() if l.startswith("RESULT ")]
    return p.returncode, out, results


@pytest.fixture(scope="module")
def day_runs():
    # one flash image: the binary's own heap (2 MB). A day of per-second churn collects garbage often, and each
    # collection sweeps the whole heap: at 16 MB the three days took 24 s instead of 9 s, with the same counts.
    rc, out, results = run_mp("import flash_sim_mp as f\n"
                              "for m in ('persistent', 'volatile', 'unchanged'):\n"
                              "    f.report(f.wear_day(m))\n", heap=None)
    assert rc == 0, out
    return {r["mode"]: r for r in results}


def test_one_setting_changed_every_second_saves_at_most_576_times_a_day(day_runs):
    r = day_runs["persistent"]
    assert r["seconds"] == 86400
    assert r["saves"] <= 86400 // 150
    assert r["saves"] >= 500  # and the changes do reach flash, about every 150 s
    assert r["erases"] > 0 and r["programs"] > 0


def test_volatile_values_every_second_cause_no_flash_writes(day_runs):
    r = day_runs["volatile"]
    assert (r["saves"], r["programs"], r["erases"]) == (0, 0, 0)


def test_setting_the_same_value_every_second_causes_no_flash_writes(day_runs):
    r = day_runs["unchanged"]
    assert (r["saves"], r["programs"], r["erases"]) == (0, 0, 0)


def test_power_cut_at_every_flash_operation_boots_old_or_new_never_a_mix():
    rc, out, results = run_mp("import flash_sim_mp as f\nf.report(f.power_cut(4))\n")
    assert rc == 0, out
    r = results[0]
    assert r["failures"] == [], r["failures"][:10]
    assert r["cut_points"] >= 200
    # every cut before the save's last operation keeps the old configuration, a cut after it the new one
    assert r["outcomes"]["old"] > 0 and r["outcomes"]["new"] > 0
    assert r["outcomes"]["old"] + r["outcomes"]["new"] == r["cut_points"]


BOOT_PATHS = r"""
import os, json
import flash_sim_mp as f
from loadpilot.config.store import Store
from loadpilot.log import Log
from loadpilot.hal.flashdev import FlashBlockDevice
try:
    from binascii import crc32
except ImportError:
    from zlib import crc32

def boot():
    log = Log(size=64, console_level=100)
    s = Store("/flash", log, f.Clock())
    return s, [l[3] for l in log.lines()]

def slot(name, version, seq, values, bad_crc=False):
    body = json.dumps(values).encode()
    c = crc32(body) & 0xFFFFFFFF
    with open("/flash/" + name, "wb") as fh:
        fh.write(("LPCFG v=%d seq=%d len=%d crc=%08x\n" % (version, seq, len(body), c ^ bad_crc)).encode())
        fh.write(body)

dev = FlashBlockDevice(f.BLOCKS, f.BLOCK_SIZE)
f.mount(dev, "/flash", mkfs=True)
out = {}
s, lines = boot()
out["missing"] = [s.get("title"), lines]
slot("lpconfig.a", 1, 5, {"max_current": 40000, "lm_active": 0, "mqtt_host": "b.lan"})
s, lines = boot()
out["v1"] = [s.get("max_total_current"), s.get("lb_enabled"), s.secret("mqtt_url"), lines]
s.flush()
slot("lpconfig.a", 2, 9, {"title": "x"}, bad_crc=True)
os.remove("/flash/lpconfig.b")
s, lines = boot()
out["corrupt"] = [s.get("title"), lines, sorted(os.listdir("/flash"))]
s.set_many({"admin_pwd": "hunter2-a", "mqtt_url": "mqtt://u:hunter2-m@b.lan"})
s.flush()
s, lines = boot()
out["secrets"] = [json.dumps(s.view()), repr(s), repr(s.get("admin_pwd")), str(s.get("mqtt_url")),
                  "%s" % s.get("admin_pwd"), lines, s.secret("admin_pwd")]
f.report(out)
"""


def test_boot_paths_on_littlefs():
    rc, out, results = run_mp(BOOT_PATHS)
    assert rc == 0, out
    r = results[0]
    assert r["missing"][0] == "LoadPilot"
    assert any("no stored configuration: using defaults" in l for l in r["missing"][1])
    assert r["v1"][:3] == [40000, False, "mqtt://b.lan:1883"]
    assert any("migrated v1->v2" in l for l in r["v1"][3])
    title, lines, files = r["corrupt"]
    assert title == "LoadPilot"
    assert any("lpconfig.a unreadable: CRC mismatch; kept as lpconfig.a.bad" in l for l in lines)
    assert any("using defaults" in l for l in lines)
    assert "lpconfig.a.bad" in files and "lpconfig.a" not in files
    secrets = r["secrets"]
    assert secrets[-1] == "hunter2-a"  # stored and readable by the code that needs it
    for text in secrets[:-1]:
        assert "hunter2" not in json.dumps(text), text
    assert '"admin_pwd": "***"' in secrets[0] and "mqtt://u:***@b.lan" in secrets[0]


ERRORS = r"""
import flash_sim_mp as f
from loadpilot.config.store import Store
from loadpilot.config.schema import ConfigError
s = Store("/tmp/none-such-dir-lp", f.quiet_log(), f.Clock())
out = []
cases = [("max_total_current", -5), ("lb_enabled", 1), ("modbus_rtu_port", "COM1,9600,8,x,1"),
         ("mqtt_url", "ftp://u:hunter2@b"), ("admin_pwd", "x" * 99), ("colour", 1), ("max_total_cur_prc", 5),
         ("devices", [{"dev_id": "E1", "driver": "x", "role": 2}]),
         ("devices", [{"dev_id": "E1", "driver": "x"}, {"dev_id": "E1", "driver": "y"}])]
for k, v in cases:
    try:
        s.set(k, v)
        out.append("accepted")
    except ConfigError as e:
        out.append([e.field, str(e)])
try:
    s.set_many({"title": "t", "modbus_tcp_port": -1})
except ConfigError as e:
    out.append([e.field, s.get("title"), s.dirty])
s.set("modbus_rtu_port", "COM2,19200,8,E,1")
out.append(s.get("modbus_rtu_port"))
f.report(out)
"""


def test_validation_errors_on_the_binary():
    rc, out, results = run_mp(ERRORS)
    assert rc == 0, out
    r = results[0]
    assert r[0] == ["max_total_current", "max_total_current: out of range 0..1000000, got -5"]
    assert r[1][0] == "lb_enabled" and "true or false" in r[1][1]
    assert r[2] == ["modbus_rtu_port", "modbus_rtu_port: parity must be n, e or o"]
    assert r[3][0] == "mqtt_url" and "scheme" in r[3][1] and "hunter2" not in r[3][1]
    assert r[4][0] == "admin_pwd" and "x" * 10 not in r[4][1]
    assert r[5] == ["colour", "colour: unknown key"]
    assert r[6][0] == "max_total_cur_prc" and "volatile" in r[6][1]
    assert r[7] == ["devices[0].role", "devices[0].role: not allowed for a wallbox"]
    assert r[8] == ["devices[1].dev_id", "devices[1].dev_id: duplicate E1"]
    assert r[9] == ["modbus_tcp_port", "LoadPilot", False]
    assert r[10] == "COM2,19200,8,e,1"


def test_every_header_bit_flip_and_every_64_byte_cut_of_the_newest_slot_boots_the_last_intact_config():
    rc, out, results = run_mp("import flash_sim_mp as f\nf.report(f.damage())\n")
    assert rc == 0, out
    r = results[0]
    assert r["failures"] == [], r["failures"][:10]
    assert r["flips"] == r["header_bytes"] * 8 >= 300
    assert r["cuts"] == (r["slot_bytes"] + 63) // 64 >= 90
    assert sum(r["reasons"].values()) == r["flips"] + r["cuts"]  # every damaged boot logged why
    for why in ("CRC mismatch", "truncated", "empty", "bad header: unexpected", "bad header: seq is not a number",
                "not a configuration slot"):
        assert r["reasons"].get(why), (why, r["reasons"])


FULL_SITE = r"""
import sys
sys.path.insert(0, %r)
import flash_sim_mp as f
from site_config import full_site, definition
from loadpilot.config.store import Store
from loadpilot.config.schema import ConfigError
from loadpilot.hal.flashdev import FlashBlockDevice

dev = FlashBlockDevice(f.BLOCKS, f.BLOCK_SIZE)
f.mount(dev, "/flash", mkfs=True)
s = Store("/flash", f.quiet_log(), f.Clock())
s.set_many(full_site())
s.flush()
out = {"size": s.size, "file": len(f._get("/flash/lpconfig.a"))}
bigger = s.get("devices")
for d in bigger[25:]:
    d["driver"], d["address"], d["definition"], d["role"] = "meter_mqtt", "mqtt", definition(int(d["dev_id"][1:])), 0
    d.pop("id", None)
try:
    s.set("devices", bigger)
    out["refused"] = None
except ConfigError as e:
    out["refused"] = [e.field, str(e)]
out["dirty_after_refusal"] = s.dirty
before = s.view()
r = Store("/flash", f.quiet_log(), f.Clock())
out["same"] = r.view() == before
out["devices"] = len(r.get("devices"))
out["secret"] = r.secret("mqtt_url")
f.report(out)
"""


def test_a_full_site_on_littlefs_fits_the_limit_and_a_larger_one_is_refused():
    rc, out, results = run_mp(FULL_SITE % os.path.dirname(HERE))
    assert rc == 0, out
    r = results[0]
    assert 35000 < r["size"] < 65536 and r["file"] < r["size"] + 64
    assert r["refused"][0] == "devices" and "more than the 65536 the store keeps" in r["refused"][1]
    assert r["dirty_after_refusal"] is False
    assert r["same"] and r["devices"] == 50 and r["secret"].startswith("mqtt://lp:site-secret-0@")


INSTALLER_FILES = r"""
import os, json
import flash_sim_mp as f
from loadpilot.config.store import Store
from loadpilot.log import Log

root = %r
cases = {
    "garbage": bytes(range(256)) * 10,
    "5 MB": None,
    "nested 1,000 deep": b'{"title": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    "nested 5,000 deep, unclosed": b"{" * 5000,
    "not an object": b'[1, 2, 3]',
    "invalid field": b'{"max_total_current": "32 A"}',
    "not UTF-8": b'{"title": "\xff\xfe"}',
}
out = {}
for name in cases:
    d = root + "/" + str(len(out))
    os.mkdir(d)
    with open(d + "/config.json", "wb") as fh:
        if cases[name] is None:
            fh.seek(5 * 1024 * 1024 - 1)
            fh.write(b"}")
        else:
            fh.write(cases[name])
    runs = []
    for boot in range(2):
        log = Log(size=64, console_level=100)
        s = Store(d, log, f.Clock())
        runs.append([[l[3] for l in log.lines() if "config.json" in l[3]], s.get("title"), s.saves])
    out[name] = [runs, sorted(os.listdir(d))]
f.report(out)
"""


def test_an_installer_file_that_cannot_be_imported_is_renamed_bad_once_on_the_binary(tmp_path):
    rc, out, results = run_mp(INSTALLER_FILES % str(tmp_path))
    assert rc == 0, out
    reasons = {"garbage": "not valid JSON", "5 MB": "too large (5242880 bytes, at most 131072)",
               "nested 1,000 deep": "nested deeper than 32 levels",
               "nested 5,000 deep, unclosed": "nested deeper than 32 levels",
               "not an object": "config: expected a JSON object", "invalid field": "max_total_current: expected an "
               "integer", "not UTF-8": "config.json: not valid JSON"}
    for name, (runs, files) in results[0].items():
        (first, title, saves), (second, _, _) = runs
        assert len(first) == 1 and first[0].startswith("config.json rejected: ") and reasons[name] in first[0], \
            (name, first)
        assert first[0].endswith("keeping defaults; file kept as config.json.bad"), (name, first)
        assert (title, saves) == ("LoadPilot", 0)
        assert second == [] and files == ["config.json.bad"], (name, second, files)
