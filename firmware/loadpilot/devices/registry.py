# Device drivers by the configuration's "driver" name. Meters are table entries (meter_tables.TABLES);
# http_input / mqtt_input devices are pushed into the Site and only watched for silence (devices/layer.py).
from loadpilot.devices.evse_omcci import Omcci
from loadpilot.devices.evse_powerbrain import PowerBrain
from loadpilot.devices.meter import TableMeter
from loadpilot.devices.meter_sunspec import SunSpecMeter
from loadpilot.devices.meter_tables import TABLES

WALLBOXES = {
    "evse_powerbrain": PowerBrain,
    "evse_loadpilot": PowerBrain,  # another LoadPilot serves the same 8000+ map
    "evse_omcci": Omcci,
}
METERS = {"meter_sunspec": SunSpecMeter}  # meters that need code (a model scan); the rest are TABLES
PUSHED = ("http_input", "mqtt_input", "meter_mqtt")  # meter_mqtt: user-defined MQTT meter (rtype 2)


def names():
    return sorted(list(WALLBOXES) + list(METERS) + list(TABLES) + list(PUSHED))


def make(dev, client):
    """The driver for one device config dict; raises ValueError for an unknown name."""
    name = dev["driver"]
    cls = WALLBOXES.get(name) or METERS.get(name)
    if cls is not None:
        return cls(dev, client)
    table = TABLES.get(name)
    if table is not None:
        return TableMeter(dev, client, table)
    raise ValueError("unknown driver %r (known: %s)" % (name, ", ".join(names())))
