# Modbus meters as data: a new meter model is a table entry here, not a class (devices/meter.py reads any).
#
# An entry (table(name)): "fc" (3 holding, 4 input), "blocks" ((start, count), ...) read each poll, and "fields":
#   (quantity, address, kind, mul, div): value inside = raw * mul // div (floats: rounded)
#   quantity: v1..v3 (V), i1..i3 (mA), p1..p3 (W per phase), p (W total), imp / exp (Wh)
#   kind: f32 (IEEE float, high word first), u32 / i32 / u64 (high word first), u16 / i16
# "signed_currents_from_power": the meter gives current magnitudes; a phase's sign follows its power
# (negative = export), as Site readings want.
#
# Register facts (public manufacturer documentation): Eastron SDM630 / SDM72 input registers, float32, FC4:
# voltages 0x0000/02/04, currents 0x0006/08/0A, phase power 0x000C/0E/10, total power 0x0034,
# import 0x0048 and export 0x004A in kWh. ABB B23: holding registers, integers: voltages 0x5B00.. (u32,
# 0.1 V), currents 0x5B0C.. (u32, 0.01 A), total power 0x5B14 and phases 0x5B16.. (i32, 0.01 W),
# import 0x5000 / export 0x5004 (u64, 0.01 kWh).
# YTL DTS353F (same map as the YTL5300, manufacturer's register matrix): holding registers, float32, FC3:
# voltages 0x000E/10/12, currents 0x0016/18/1A (A), total power 0x001C and phases 0x001E/20/22 (kW),
# forward (import) energy 0x0108 and reverse (export) 0x0110 in kWh.
# YTL DEM4A: single-phase; the customer's list of supported devices names it in one entry with the DTS 353
# ("YTL DTS 353 und DEM4A"), so it is read with the same map, L1 only. Each request covers exactly the
# registers used, so a meter that leaves the L2/L3 registers out still answers every read. Not checked
# against a DEM4A yet; a user-defined Modbus meter (meter_modbus) can override it without a firmware change.

# (driver name, fc, blocks, fields, signed_currents_from_power): literal constant tuples all through, so the
# compiler makes MODELS one constant that stays in flash when frozen (a name inside would build it at import);
# table(name) makes the entry dict a driver reads, when a configured meter asks for it
MODELS = (
    ("meter_sdm630", 4, ((0x0000, 0x12), (0x0034, 2), (0x0048, 4)), (
        ("v1", 0x0000, "f32", 1, 1), ("v2", 0x0002, "f32", 1, 1), ("v3", 0x0004, "f32", 1, 1),
        ("i1", 0x0006, "f32", 1000, 1), ("i2", 0x0008, "f32", 1000, 1), ("i3", 0x000A, "f32", 1000, 1),
        ("p1", 0x000C, "f32", 1, 1), ("p2", 0x000E, "f32", 1, 1), ("p3", 0x0010, "f32", 1, 1),
        ("p", 0x0034, "f32", 1, 1),
        ("imp", 0x0048, "f32", 1000, 1), ("exp", 0x004A, "f32", 1000, 1),
    ), True),
    ("meter_dts353", 3, ((0x000E, 0x16), (0x0108, 0x0A)), (
        ("v1", 0x000E, "f32", 1, 1), ("v2", 0x0010, "f32", 1, 1), ("v3", 0x0012, "f32", 1, 1),
        ("i1", 0x0016, "f32", 1000, 1), ("i2", 0x0018, "f32", 1000, 1), ("i3", 0x001A, "f32", 1000, 1),
        ("p", 0x001C, "f32", 1000, 1),
        ("p1", 0x001E, "f32", 1000, 1), ("p2", 0x0020, "f32", 1000, 1), ("p3", 0x0022, "f32", 1000, 1),
        ("imp", 0x0108, "f32", 1000, 1), ("exp", 0x0110, "f32", 1000, 1),
    ), True),
    ("meter_dem4a", 3, ((0x000E, 2), (0x0016, 2), (0x001C, 2), (0x0108, 2), (0x0110, 2)), (
        ("v1", 0x000E, "f32", 1, 1), ("i1", 0x0016, "f32", 1000, 1), ("p", 0x001C, "f32", 1000, 1),
        ("imp", 0x0108, "f32", 1000, 1), ("exp", 0x0110, "f32", 1000, 1),
    ), True),
    ("meter_abb_b23", 3, ((0x5000, 8), (0x5B00, 0x1C)), (
        ("imp", 0x5000, "u64", 10, 1), ("exp", 0x5004, "u64", 10, 1),
        ("v1", 0x5B00, "u32", 1, 10), ("v2", 0x5B02, "u32", 1, 10), ("v3", 0x5B04, "u32", 1, 10),
        ("i1", 0x5B0C, "u32", 10, 1), ("i2", 0x5B0E, "u32", 10, 1), ("i3", 0x5B10, "u32", 10, 1),
        ("p", 0x5B14, "i32", 1, 100),
        ("p1", 0x5B16, "i32", 1, 100), ("p2", 0x5B18, "i32", 1, 100), ("p3", 0x5B1A, "i32", 1, 100),
    ), True),
)


ALIASES = (("meter_sdm72", "meter_sdm630"),)  # SDM72D-M: same addresses for these quantities


def names():
    return [m[0] for m in MODELS] + [a[0] for a in ALIASES]


def table(name):
    """The entry of a built-in model as the dict devices/meter.py reads (a new one per call), or None."""
    for a in ALIASES:
        if a[0] == name:
            name = a[1]
    for m in MODELS:
        if m[0] == name:
            return {"fc": m[1], "blocks": m[2], "fields": m[3], "signed_currents_from_power": m[4]}
    return None
