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
