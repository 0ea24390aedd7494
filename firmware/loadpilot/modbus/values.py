# Register words of a read result -> integers. regs holds big-endian bytes (2 per register), i is the register
# index; multi-register values are high word first. Shared by every master (TCP client, RTU master, drivers).
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


def i64(regs, i):
    v = u64(regs, i)
    return v - 0x10000000000000000 if v & 0x8000000000000000 else v


# Low word first ("lh" in a user-defined meter definition): some devices send 32/64-bit values that way.
_swap = bytearray(4)  # scratch for the float: no allocation per value


def u32_lh(regs, i):
    return (u16(regs, i + 1) << 16) | u16(regs, i)


def i32_lh(regs, i):
    v = u32_lh(regs, i)
    return v - 0x100000000 if v & 0x80000000 else v


def u64_lh(regs, i):
    return (u32_lh(regs, i + 2) << 32) | u32_lh(regs, i)


def i64_lh(regs, i):
    v = u64_lh(regs, i)
    return v - 0x10000000000000000 if v & 0x8000000000000000 else v


def f32_lh(regs, i):
    j = 2 * i
    _swap[0] = regs[j + 2]
    _swap[1] = regs[j + 3]
    _swap[2] = regs[j]
    _swap[3] = regs[j + 1]
    return struct.unpack_from(">f", _swap, 0)[0]
