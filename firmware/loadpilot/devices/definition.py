# User-defined device definitions (reference/user-defined-meters.md): what Modbus definitions (rtype 0,
# devices/meter_definition.py) and MQTT definitions (rtype 2, mqtt/user_meter.py) share: variable names,
# types, resolution and the properties that are not variables.

# the variables the Charging Manager knows; units after the resolution: V, mA, W (VA, var), Wh, %
KNOWN = ("voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3", "power_w",
         "power_va", "power_var", "power_w_l1", "power_w_l2", "power_w_l3", "import_wh", "export_wh", "soc")
IDENTITY = ("type_designation", "version", "firmware_version", "serial")  # shown as the device's details
TYPES = ("int16", "uint16", "int32", "uint32", "int64", "float", "string")
# properties of the definition itself, accepted everywhere (some only tune the original's own scheduling)
GLOBAL = ("rtype", "mtype", "manufacturer", "upd_delay", "delay_accumulated", "ui_addr", "reserved")
RTYPES = {0: "Modbus", 1: "HTTP/JSON", 2: "MQTT"}
MTYPES = (0, 1, 2, 4)  # other, meter, inverter, battery storage


class DefinitionError(ValueError):
    pass


def good_name(name):
    """Letters, digits and _, optionally "*" (shown in the UI) or "CM." (a Charging Manager variable) in front."""
    if name.startswith("*"):
        name = name[1:]
    elif name.startswith("CM."):
        name = name[3:]
    if not name:
        return False
    for c in name:
        if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c == "_"):
            return False
    return True


def number(value):
    """True for a JSON number (bool is not one)."""
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_common(owner, definition, rtype, settings=()):
    """The checks every definition gets: an object of the right rtype, an mtype we know, good variable names.
    settings: the transport's own properties, not variables. -> [(name, spec)] of its variables."""
    if not isinstance(definition, dict):
        raise DefinitionError("%s: the definition must be a JSON object" % owner)
    if definition.get("rtype") != rtype:
        raise DefinitionError("%s: needs rtype %d (%s), got %r" % (owner, rtype, RTYPES[rtype],
                                                                   definition.get("rtype")))
    if definition.get("mtype", 1) not in MTYPES:
        raise DefinitionError("%s: mtype must be one of %s" % (owner, ", ".join(str(m) for m in MTYPES)))
    out = []
    for name in definition:
        if name in GLOBAL or name in settings:
            continue
        if not good_name(name):
            raise DefinitionError("%s: bad variable name %r" % (owner, name))
        spec = definition[name]
        if not isinstance(spec, dict):
            raise DefinitionError("%s.%s: expected an object" % (owner, name))
        if "expr" in spec:
            raise DefinitionError("%s.%s: formulas (expr) are not supported yet" % (owner, name))
        t = spec.get("type", "float")
        if t not in TYPES:
            raise DefinitionError("%s.%s: type must be one of %s" % (owner, name, ", ".join(TYPES)))
        if not number(spec.get("resolution", 1)):
            raise DefinitionError("%s.%s: resolution must be a number" % (owner, name))
        out.append((name, spec))
    return out


def measures_phases(names):
    """True if the variables give per-phase currents, or per-phase powers (from which currents follow): what
    load management needs from a grid meter."""
    return "current_l1" in names or "power_w_l1" in names
