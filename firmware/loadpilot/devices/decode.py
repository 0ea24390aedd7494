# Register words -> integer values inside. regs is big-endian bytes (2 per register), i the register index.
import struct


def u16(regs, i):
    return (regs[2 * i] << 8) | regs[2 * i + 1]


def i16(regs, i):
    v = u16(regs, i)
    return v - 0x10000 if v & 0x8000 else v


def u32(regs, i):
    return (u16(regs, i) << 16) | u16(regs, i + 1)


def i32(regs, i):
    v = u32(regs, i)
    return v - 0x100000000 if v & 0x80000000 else v


def u64(regs, i):
    return (u32(regs, i) << 32) | u32(regs, i + 2)


def f32(regs, i):
    return struct.unpack_from(">f", regs, 2 * i)[0]


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
