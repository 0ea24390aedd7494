# MQTT transport: broker URLs (url), packets (packet), the asyncio client (client), shared connections
# (connections) and duplicate detection for incoming commands (dedup). Topics and commands live elsewhere.
from loadpilot.codes import SMALL_HEAP_KB

BROKER_KEYS = ("mqtt_api_url", "mqtt_dev_info_url", "mqtt_log_url", "mqtt_ta_log_url")
# The largest packet the box takes in: each broker connection preallocates one receive buffer of this size.
# A board without PSRAM (codes.SMALL_HEAP_KB; a single box: commands, set/ pushes of a few hundred bytes) keeps
# 2 KB; a larger message is skipped and answered with its size (docs/mqtt.md, "Bounded input").
MAX_PACKET = 4096
MAX_PACKET_SMALL = 2048


def max_packet(heap_kb):
    return MAX_PACKET_SMALL if heap_kb <= SMALL_HEAP_KB else MAX_PACKET


def mqtt_inputs(store):
    """HTTP-input devices whose address is `mqtt` or a broker URL: they listen on set/<dev_id>."""
    out = []
    for dev in store.get("devices"):
        a = dev["address"]
        if dev["driver"] == "http_input" and (a == "mqtt" or a.startswith("mqtt")):
            out.append(dev)
    return out


def user_meters(store):
    """User-defined MQTT meters (driver meter_mqtt, rtype 2): their definitions name the topics to read."""
    return [d for d in store.get("devices") if d["driver"] == "meter_mqtt"]


def wanted(store):
    """Whether any topic group or device needs a broker: without one, mqtt.service is never imported."""
    return any(store.secret(k) for k in BROKER_KEYS) or bool(mqtt_inputs(store)) or bool(user_meters(store))
