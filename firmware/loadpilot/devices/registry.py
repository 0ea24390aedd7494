# Device drivers by the configuration's "driver" name. Meters are table entries (meter_tables.MODELS), or a
# user-defined definition compiled to one (meter_modbus); http_input / mqtt_input devices are pushed into the
# Site and only watched for silence (devices/layer.py).
from loadpilot.devices import address as address_mod
from loadpilot.codes import ROLE_GRID

# Names only: a driver's module is imported when a configured device needs it (a feature that is off costs no
# heap). TABLE_NAMES are meter_tables.names() (a unit test keeps the two equal).
WALLBOXES = ("evse_powerbrain", "evse_loadpilot", "evse_omcci")  # evse_loadpilot: another LoadPilot, same 8000+ map
METERS = ("meter_sunspec",)  # meters that need code (a model scan); the rest are TABLE_NAMES
TABLE_NAMES = ("meter_sdm630", "meter_sdm72", "meter_dts353", "meter_dem4a", "meter_abb_b23")
USER_MODBUS = "meter_modbus"  # user-defined Modbus meter (rtype 0): its definition is the table
PUSHED = ("http_input", "mqtt_input", "meter_mqtt")  # meter_mqtt: user-defined MQTT meter (rtype 2)


def names():
    return sorted(WALLBOXES + METERS + TABLE_NAMES + (USER_MODBUS,) + PUSHED)


def _driver_class(name):
    if name == "evse_omcci":
        from loadpilot.devices.evse_omcci import Omcci
        return Omcci
    if name in WALLBOXES:
        from loadpilot.devices.evse_powerbrain import PowerBrain
        return PowerBrain
    if name == "meter_sunspec":
        from loadpilot.devices.meter_sunspec import SunSpecMeter
        return SunSpecMeter
    return None


def user_table(dev):
    from loadpilot.devices.meter_definition import to_table
    return to_table(dev.get("definition") or {}, dev["dev_id"] + ".definition")


def make(dev, client):
    """The driver for one device config dict; raises ValueError for an unknown name or a bad definition."""
    name = dev["driver"]
    cls = _driver_class(name)
    if cls is not None:
        return cls(dev, client)
    table = None
    if name in TABLE_NAMES:
        from loadpilot.devices.meter_tables import table as model_table
        table = model_table(name)
    elif name == USER_MODBUS:
        table = user_table(dev)
    if table is not None:
        from loadpilot.devices.meter import TableMeter
        return TableMeter(dev, client, table)
    raise ValueError("unknown driver %r (known: %s)" % (name, ", ".join(names())))


def check(dev):
    """Why the layer could not drive this device config dict, as (field, reason), or None. Asked when a
    device list is set, so the installer gets the answer at once instead of a log line later."""
    name = dev["driver"]
    wallbox = dev["dev_id"][0] == "E"
    try:
        where = address_mod.parse(dev.get("address", ""))
    except ValueError as e:
        return "address", str(e)
    if where[0] == "local":  # this box's own hardware drives it, whatever the driver is called
        if wallbox != (where[1] == "evse"):
            return "address", "%s is this box's %s: give it an %s dev_id" % (
                where[1], "charge point" if where[1] == "evse" else "S0 meter", "E" if where[1] == "evse" else "M")
        return None
    if name not in names():
        return "driver", "unknown driver %r (known: %s)" % (name, ", ".join(names()))
    if name in WALLBOXES and not wallbox:
        return "driver", "%s drives wallboxes: give it an E dev_id" % name
    if wallbox and name not in WALLBOXES and name not in ("http_input", "mqtt_input"):
        return "driver", "%s drives meters: give it an M dev_id" % name
    if where[0] == "push" and name not in PUSHED:
        return "address", "driver %s needs an address (IP:port or COMn,baud,bits,parity,stop)" % name
    if name in (USER_MODBUS, "meter_mqtt"):
        try:
            if name == USER_MODBUS:
                fields = [f[0] for f in user_table(dev)["fields"]]
                phases = "i1" in fields or "p1" in fields
            else:
                from loadpilot.devices.definition import measures_phases
                from loadpilot.mqtt.user_meter import UserMeter
                phases = measures_phases([v.name for v in UserMeter(dev["dev_id"], dev.get("definition") or {},
                                                                    None).vars])
        except ValueError as e:
            return "definition", str(e)
        if dev.get("role") == ROLE_GRID and not phases:
            # the manager holds every phase under the house fuse with these; a total alone cannot do that
            return "definition", "a grid meter needs current_l1..l3 or power_w_l1..l3"
    return None
