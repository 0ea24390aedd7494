# Board files are data (boards/*.json): pins, UARTs and features. This module checks one and names the
# first wrong field, so an installer with a typo gets "uarts.rs485.de: expected a pin" and not a traceback.
import json


class BoardError(ValueError):
    pass


# What the board can run (boards/README.md "Tier and figures"): firmware "frozen" = only an image with
# LoadPilot frozen in fits its heap; "stock" = stock MicroPython with the .mpy files (or a frozen image).
_FIRMWARES = ("frozen", "stock")
_PROFILES = ("single_box", "site")
# field, default, lo, hi: heap and TLS are for people and docs; sockets is the budget the config store keeps
_FIGURES = (("heap_kb", 112, 16, 65536), ("sockets", 10, 1, 1024), ("tls_sessions", 1, 0, 16))

_FEATURES = ("evse", "rcd", "s0", "load_shedding", "wifi", "ethernet", "psram", "contactor_feedback",
             "phase_switching")


def _fail(path, why):
    raise BoardError("board %s: %s" % (path, why))


def _pin(value, path, hal):
    # ESP32 boards name GPIO numbers; the unix virtual board accepts names as well
    if isinstance(value, bool) or not (isinstance(value, int) or (hal == "unix" and isinstance(value, str))):
        _fail(path, "expected a GPIO number, got %r" % (value,))
    if isinstance(value, int) and not 0 <= value <= 48:
        _fail(path, "GPIO %d out of range 0..48" % value)


def _dict(value, path):
    if not isinstance(value, dict):
        _fail(path, "expected an object, got %r" % (value,))
    return value


def _known(obj, path, allowed):
    for k in obj:
        if k not in allowed:
            _fail("%s.%s" % (path, k) if path else k, "unknown field (allowed: %s)" % ", ".join(allowed))


def validate(board):
    """Check a board dict; return it with defaults filled in. Raises BoardError naming the field."""
    _dict(board, "")
    _known(board, "", ("name", "hal", "description", "uarts", "outputs", "inputs", "pwm", "adc", "features",
                       "watchdog_ms", "notes", "firmware", "profile") + tuple(f[0] for f in _FIGURES))
    name = board.get("name")
    if not isinstance(name, str) or not name:
        _fail("name", "required, a non-empty string")
    hal = board.get("hal")
    if hal not in ("esp32", "unix"):
        _fail("hal", "must be \"esp32\" or \"unix\", got %r" % (hal,))
    for key, spec in _dict(board.setdefault("uarts", {}), "uarts").items():
        path = "uarts." + key
        _dict(spec, path)
        _known(spec, path, ("id", "tx", "rx", "de", "path"))
        if hal == "esp32":
            if not isinstance(spec.get("id"), int) or not 0 <= spec["id"] <= 2:
                _fail(path + ".id", "expected a UART number 0..2, got %r" % (spec.get("id"),))
            for pin in ("tx", "rx"):
                if pin not in spec:
                    _fail(path + "." + pin, "required")
                _pin(spec[pin], path + "." + pin, hal)
        if "de" in spec and spec["de"] is not None:
            _pin(spec["de"], path + ".de", hal)
    for key, pin in _dict(board.setdefault("outputs", {}), "outputs").items():
        _pin(pin, "outputs." + key, hal)
    for key, spec in _dict(board.setdefault("inputs", {}), "inputs").items():
        path = "inputs." + key
        _dict(spec, path)
        _known(spec, path, ("pin", "pull", "invert"))
        _pin(spec.get("pin"), path + ".pin", hal)
        if spec.get("pull") not in (None, "up", "down"):
            _fail(path + ".pull", "must be \"up\", \"down\" or null")
    for key, spec in _dict(board.setdefault("pwm", {}), "pwm").items():
        path = "pwm." + key
        _dict(spec, path)
        _known(spec, path, ("pin", "freq_hz", "invert"))
        _pin(spec.get("pin"), path + ".pin", hal)
        f = spec.setdefault("freq_hz", 1000)
        if not isinstance(f, int) or not 1 <= f <= 40000:
            _fail(path + ".freq_hz", "expected 1..40000 Hz, got %r" % (f,))
    for key, spec in _dict(board.setdefault("adc", {}), "adc").items():
        path = "adc." + key
        _dict(spec, path)
        _known(spec, path, ("pin", "scale_num", "scale_den", "offset_mv"))
        _pin(spec.get("pin"), path + ".pin", hal)
        for k, dflt in (("scale_num", 1), ("scale_den", 1), ("offset_mv", 0)):
            v = spec.setdefault(k, dflt)
            if not isinstance(v, int) or (k == "scale_den" and v == 0):
                _fail(path + "." + k, "expected a non-zero integer" if k == "scale_den" else "expected an integer")
    feats = _dict(board.setdefault("features", {}), "features")
    _known(feats, "features", _FEATURES)
    for k in _FEATURES:
        v = feats.setdefault(k, False)
        if not isinstance(v, bool):
            _fail("features." + k, "expected true or false, got %r" % (v,))
    if board.setdefault("firmware", "stock") not in _FIRMWARES:
        _fail("firmware", "must be \"frozen\" or \"stock\", got %r" % (board["firmware"],))
    if board.setdefault("profile", "site") not in _PROFILES:
        _fail("profile", "must be \"single_box\" or \"site\", got %r" % (board["profile"],))
    for k, dflt, lo, hi in _FIGURES:
        v = board.setdefault(k, dflt)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            _fail(k, "expected an integer %d..%d, got %r" % (lo, hi, v))
    wd = board.setdefault("watchdog_ms", 10000)
    if not isinstance(wd, int) or not 1000 <= wd <= 60000:
        _fail("watchdog_ms", "expected 1000..60000, got %r" % (wd,))
    return board


def socket_budget(board):
    """What the config store checks a configuration against (schema.check_together): the board's lwIP
    sockets and TLS sessions, and how many S0 ports the Power Brain map opens next to pb_tcp_port (one per S0
    meter input)."""
    s0 = 0
    if board["features"].get("evse") and board["features"].get("s0"):
        for name in ("s0_1", "s0_2"):
            if name in board["inputs"]:
                s0 += 1
    return {"sockets": board["sockets"], "s0_ports": s0, "evse": board["features"].get("evse", False),
            "board": board["name"], "tls_sessions": board["tls_sessions"]}


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise BoardError("board file %s not found" % path)
    try:
        board = json.loads(text)
    except ValueError:
        raise BoardError("board file %s is not valid JSON" % path)
    return validate(board)
