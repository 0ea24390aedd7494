# Register words -> scaled integer values inside (mA, V, W, Wh); the word decoders are modbus/values.py.
from loadpilot.modbus import values
from loadpilot.modbus.values import i16, i32, u16, u32, u64  # noqa: F401 (drivers decode words with these)

# kind -> (decoder, registers); "_lh" kinds take the low word first
KINDS = {
    "u16": (values.u16, 1), "i16": (values.i16, 1),
    "u32": (values.u32, 2), "i32": (values.i32, 2), "u64": (values.u64, 4), "i64": (values.i64, 4),
    "f32": (values.f32, 2),
    "u32_lh": (values.u32_lh, 2), "i32_lh": (values.i32_lh, 2), "u64_lh": (values.u64_lh, 4),
    "i64_lh": (values.i64_lh, 4), "f32_lh": (values.f32_lh, 2),
}


def raw(kind, regs, i):
    return KINDS[kind][0](regs, i)


def scale(v, mul, div):
    """raw * mul / div as an integer, rounded half away from zero. Raises ValueError for NaN or infinity (a
    meter's "no value")."""
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("not a number")
        v = v * mul / div
        return int(v + 0.5) if v >= 0 else -int(-v + 0.5)
    v *= mul
    if div != 1:
        v = (v + div // 2) // div if v >= 0 else -((-v + div // 2) // div)
    return v


def scaled(kind, regs, i, mul, div):
    return scale(raw(kind, regs, i), mul, div)
