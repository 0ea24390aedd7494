import copy
import glob
import json
import os

import pytest

from loadpilot import board

BOARDS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "boards", "*.json")))


def load_json(name):
    with open([b for b in BOARDS if b.endswith(name + ".json")][0]) as f:
        return json.load(f)


def test_every_shipped_board_validates():
    names = [board.load(path)["name"] for path in BOARDS]
    assert {"esp32_devkit", "esp32s3_psram", "esp32_wrover", "unix_sim"} <= set(names)


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b["uarts"]["rs485_1"].__setitem__("de", "GPIO4"), "uarts.rs485_1.de"),
    (lambda b: b["uarts"]["rs485_1"].pop("tx"), "uarts.rs485_1.tx"),
    (lambda b: b["uarts"]["rs485_1"].__setitem__("id", 7), "uarts.rs485_1.id"),
    (lambda b: b["outputs"].__setitem__("contactor", 99), "outputs.contactor"),
    (lambda b: b["inputs"]["load_shed"].__setitem__("pull", "sideways"), "inputs.load_shed.pull"),
    (lambda b: b["pwm"]["cp"].__setitem__("freq_hz", 0), "pwm.cp.freq_hz"),
    (lambda b: b["adc"]["cp"].__setitem__("scale_den", 0), "adc.cp.scale_den"),
    (lambda b: b["features"].__setitem__("evse", "yes"), "features.evse"),
    (lambda b: b["features"].__setitem__("teleport", True), "features.teleport"),
    (lambda b: b.__setitem__("hal", "arduino"), "hal"),
    (lambda b: b.__setitem__("watchdog_ms", 50), "watchdog_ms"),
    (lambda b: b.__setitem__("pins", {}), "pins"),
    (lambda b: b.__setitem__("firmware", "mpy"), "firmware"),
    (lambda b: b.__setitem__("profile", "25 boxes"), "profile"),
    (lambda b: b.__setitem__("sockets", 0), "sockets"),
    (lambda b: b.__setitem__("heap_kb", "112"), "heap_kb"),
    (lambda b: b.__setitem__("tls_sessions", True), "tls_sessions"),
])
def test_wrong_field_is_named(mutate, field):
    b = copy.deepcopy(load_json("esp32_devkit"))
    mutate(b)
    with pytest.raises(board.BoardError) as e:
        board.validate(b)
    assert field in str(e.value)


def test_missing_and_broken_files_say_so(tmp_path):
    with pytest.raises(board.BoardError, match="not found"):
        board.load(str(tmp_path / "nope.json"))
    p = tmp_path / "broken.json"
    p.write_text("{ not json")
    with pytest.raises(board.BoardError, match="not valid JSON"):
        board.load(str(p))


def test_defaults_are_filled():
    b = board.validate({"name": "minimal", "hal": "unix"})
    assert b["watchdog_ms"] == 10000 and b["features"]["evse"] is False and b["uarts"] == {}

    assert (b["firmware"], b["profile"], b["heap_kb"], b["sockets"], b["tls_sessions"]) == ("stock", "site", 112, 10, 1)


def test_boards_declare_their_tier_and_figures():
    tiers = {}
    for path in BOARDS:
        b = board.load(path)
        tiers[b["name"]] = (b["firmware"], b["profile"], b["sockets"], board.socket_budget(b)["s0_ports"])
    # no PSRAM: only a frozen image fits, and that image has 16 lwIP sockets (boards/esp32_devkit/sdkconfig.loadpilot)
    assert tiers["esp32_devkit"] == ("frozen", "single_box", 16, 2)
    assert tiers["esp32_wrover"][:3] == ("stock", "site", 10)  # PSRAM: the .mpy deploy on stock MicroPython
    assert tiers["esp32s3_psram"][:3] == ("stock", "site", 10)
    assert tiers["unix_sim"][:2] == ("stock", "site")
    for path in BOARDS:  # every ESP32 board on stock firmware: stock ESP32 MicroPython's lwIP socket count
        b = board.load(path)
        assert b["hal"] != "esp32" or b["firmware"] == "frozen" or b["sockets"] == 10
