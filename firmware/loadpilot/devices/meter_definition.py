# User-defined Modbus meters (driver meter_modbus, rtype 0, reference/user-defined-meters.md): a definition
# compiles to the same table entry the built-in models are (devices/meter_tables.py), so devices/meter.py
# reads it like any other model. What the original's definitions can do and this cannot (formulas, inputs,
# outputs) is refused by name instead of half-working.
from loadpilot.devices.definition import IDENTITY, DefinitionError, check_common, number

# known variable -> table quantity (units after the resolution: V, mA, W, Wh, %)
QUANTITY = {"voltage_l1": "v1", "voltage_l2": "v2", "voltage_l3": "v3",
            "current_l1": "i1", "current_l2": "i2", "current_l3": "i3",
            "power_w": "p", "power_w_l1": "p1", "power_w_l2": "p2", "power_w_l3": "p3", "power_va": "va",
            "import_wh": "imp", "export_wh": "exp", "soc": "soc"}
_KIND = {"int16": "i16", "uint16": "u16", "int32": "i32", "uint32": "u32", "int64": "i64", "float": "f32"}
_REGS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "float": 2}
_MODBUS = ("modbus_read", "modbus_read_max_registers", "modbus_allow_gaps", "rtu", "tcp")
_REFUSED = ("inputs", "outputs", "resets")
MAX_STRING_REGS = 32


def ratio(res, where):
    """A resolution as an integer fraction (mul, div), div a power of ten: the decoders stay in integers."""
    if res == 0:
        raise DefinitionError("%s: resolution must not be 0" % where)
    div = 1
    while div <= 1000000:
        m = res * div
        r = int(m + 0.5) if m >= 0 else -int(-m + 0.5)
        if r and abs(m - r) <= 1e-6 * abs(m):
            return r, div
        div *= 10
    raise DefinitionError("%s: resolution %r has more than 6 decimals" % (where, res))


def _address(value, where):
    if isinstance(value, str):  # the original allows hex with 0x in its JSON5 files; JSON needs a string
        try:
            value = int(value, 16) if value[:2].lower() == "0x" else int(value)
        except ValueError:
            raise DefinitionError("%s: address %r is not a register number" % (where, value))
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise DefinitionError("%s: address must be a register number 0..65535" % where)
    return value


def _int_setting(definition, key, default, lo, hi, owner):
    v = definition.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise DefinitionError("%s: %s must be an integer %d..%d" % (owner, key, lo, hi))
    return v


def blocks(spans, max_regs, allow_gaps):
    """Read requests covering (start, count) spans: touching or overlapping spans share one request, spans
    with a gap only if allow_gaps; no request longer than max_regs."""
    out = []
    for start, n in sorted(spans):
        if out:
            s0, n0 = out[-1]
            end = max(s0 + n0, start + n)
            if (start <= s0 + n0 or allow_gaps) and end - s0 <= max_regs:
                out[-1] = (s0, end - s0)
                continue
        out.append((start, n))
    return tuple(out)


def to_table(definition, owner="definition"):
    """-> a meter table entry (see meter_tables.py) with the extras a definition can add:
    "fixed" {quantity: value}, "extra" (name, addr, kind, mul, div) read each poll and shown in the device view,
    "once" (name, addr, kind, regs, mul, div) read on each new contact, with "once_blocks", "details" (fixed
    strings), "min_period_ms" (upd_delay), "reserved" (raw values that mean 0). Raises DefinitionError."""
    for key in _REFUSED:
        if isinstance(definition, dict) and key in definition:
            raise DefinitionError("%s: %s are not supported" % (owner, key))
    variables = check_common(owner, definition, 0, _MODBUS)
    fc = _int_setting(definition, "modbus_read", 3, 3, 4, owner)
    max_regs = _int_setting(definition, "modbus_read_max_registers", 125, 1, 125, owner)
    allow_gaps = definition.get("modbus_allow_gaps", False)
    if not isinstance(allow_gaps, bool):
        raise DefinitionError("%s: modbus_allow_gaps must be true or false" % owner)
    reserved = definition.get("reserved", [])
    if not isinstance(reserved, list) or not all(number(r) for r in reserved):
        raise DefinitionError("%s: reserved must be a list of numbers" % owner)
    fields, extra, once, fixed, details, spans, once_spans = [], [], [], {}, {}, [], []
    if isinstance(definition.get("manufacturer"), str):
        details["manufacturer"] = definition["manufacturer"]
    for name, spec in variables:
        where = "%s.%s" % (owner, name)
        q = QUANTITY.get(name)
        if "fixed" in spec:
            value = spec["fixed"]
            if q is not None:
                try:
                    fixed[q] = int(float(value))
                except (TypeError, ValueError):
                    raise DefinitionError("%s: fixed must be a number for %s" % (where, name))
            else:
                details[name] = value
            continue
        if "address" not in spec:
            raise DefinitionError("%s: needs an address (the register) or fixed" % where)
        if "type" not in spec:
            raise DefinitionError("%s: needs a type (%s)" % (where, ", ".join(list(_KIND) + ["string"])))
        addr = _address(spec["address"], where)
        t = spec["type"]
        order = spec.get("order", "hl")
        if order not in ("hl", "lh"):
            raise DefinitionError("%s: order must be \"hl\" or \"lh\"" % where)
        if t == "string":
            regs = spec.get("length", 8)
            if isinstance(regs, bool) or not isinstance(regs, int) or not 1 <= regs <= MAX_STRING_REGS:
                raise DefinitionError("%s: length must be 1..%d registers" % (where, MAX_STRING_REGS))
            if q is not None:
                raise DefinitionError("%s: %s is a number, not a string" % (where, name))
            kind, mul, div = "str", 1, 1
        else:
            regs = _REGS[t]
            kind = _KIND[t] + ("_lh" if order == "lh" and regs > 1 else "")  # a register is big-endian on the wire
            mul, div = ratio(spec.get("resolution", 1), where)
        if addr + regs > 65536:
            raise DefinitionError("%s: register %d + %d is past 65535" % (where, addr, regs))
        if regs > max_regs:
            raise DefinitionError("%s: %d registers, more than modbus_read_max_registers" % (where, regs))
        if kind == "str" or spec.get("once") is True or name in IDENTITY:
            once.append((name, addr, kind, regs, mul, div))
            once_spans.append((addr, regs))
        elif q is not None:
            fields.append((q, addr, kind, mul, div))
            spans.append((addr, regs))
        else:
            extra.append((name, addr, kind, mul, div))
            spans.append((addr, regs))
    if not spans and not fixed:
        raise DefinitionError("%s: no variable to read" % owner)
    upd = _int_setting(definition, "upd_delay", 0, 0, 3600000, owner)
    return {"fc": fc, "blocks": blocks(spans, max_regs, allow_gaps), "fields": tuple(fields),
            "signed_currents_from_power": True, "fixed": fixed, "extra": tuple(extra), "once": tuple(once),
            "once_blocks": blocks(once_spans, max_regs, allow_gaps), "details": details, "min_period_ms": upd,
            "reserved": tuple(reserved)}

