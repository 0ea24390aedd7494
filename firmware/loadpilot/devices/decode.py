# Register words -> scaled integer values inside (mA, V, W, Wh); the word decoders are modbus/values.py.
from loadpilot.modbus.values import f32, i16, i32, u16, u32, u64

_KINDS = {"u16": u16, "i16": i16, "u32": u32, "i32": i32, "u64": u64, "f32": f32}


def scaled(kind, regs, i, mul, div):
    v = _KINDS[kind](regs, i)
    if kind == "f32":
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("not a number")
        v = v * mul / div
        return int(v + 0.5) if v >= 0 else -int(-v + 0.5)
    v *= mul
    if div != 1:
        v = v // div if v >= 0 else -((-v) // div)
    return v
