# A device's "address" field, as the installer types it (http-api.md: URL, IP address or COM port + parameters):
#   "192.168.2.151:4701" -> Modbus TCP;  "COM1,19200,8,n,1" -> Modbus RTU on that bus;
#   "evse", "meter1", "meter2" -> this box's own charge point and S0 meters (handled elsewhere);
#   "" -> pushed device (http_input / mqtt_input).
from loadpilot.modbus import serial_settings

LOCAL = ("evse", "meter1", "meter2")


def parse(text):
    """-> ("tcp", host, port) | ("rtu", SerialSettings) | ("local", name) | ("push", None) for "" or an MQTT
    broker. Raises ValueError."""
    t = (text or "").strip()
    if not t:
        return ("push", None)
    if t.lower() in LOCAL:
        return ("local", t.lower())
    if t.lower() == "mqtt" or (t[:4].lower() == "mqtt" and "://" in t):
        for ch in t:  # percent-encoded, so that redaction always finds where a password ends
            if ch <= " " or ch in "\"'\x7f":
                raise ValueError("broker address: percent-encode spaces, quotes and control characters")
        at = t.rfind("@")
        if at > 0 and t[:at].endswith(":***"):  # get_params' view sent back: the password would become ***
            raise ValueError("broker address: a hidden password (***) cannot be saved: type it in full")
        return ("push", None)  # fed over MQTT (set/<dev_id>, or a user-defined meter's topics)
    if "@" in t:  # never echoed: it may hold a password
        raise ValueError("address: user and password are only taken in an mqtt:// broker URL")
    if t[:3].upper() == "COM":
        return ("rtu", serial_settings.parse(t))
    host, sep, port = t.rpartition(":")
    if not sep:
        host, port = t, "502"
    parts = host.split(".")
    if len(parts) != 4 or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts):
        # MicroPython resolves names with a blocking getaddrinfo: only IP addresses are taken
        raise ValueError("address %r: expected IP:port, COMn,baud,bits,parity,stop or evse/meter1/meter2" % text)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("address %r: port must be 1..65535" % text)
    return ("tcp", host, int(port))


def bus_key(parsed):
    """Devices with the same key share one transport: one RtuMaster per COM port, one TCP client per host:port."""
    if parsed[0] == "rtu":
        return "rtu:" + parsed[1].port
    if parsed[0] == "tcp":
        return "tcp:%s:%d" % (parsed[1], parsed[2])
    return None
