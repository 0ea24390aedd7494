# Register maps as data. A row is (address, registers, access, kind, key, scale):
#   access  R, W or RW;  kind  U16, I16, U32, I32, U64 (high word first) or STR (2 chars per register); small
#   ints, so that a map's rows hold one string each (a constant tuple loaded from .mpy keeps every string apart)
#   key     the value's name in the source dict (reporting) and in the commands a write produces
#   scale   internal units per wire unit (100 for mA inside / 0.1 A on the wire, 1000 for mA / A)
# encode() fills an image (a modbus.image.RegisterImage) from a dict; decode_write() turns a Modbus write into
# (key, value) commands, or an exception code with nothing changed. Limits are rows too, (key, lo, hi): tuples of
# constants stay in flash when frozen, where a dict would be built in RAM at import.
from micropython import const

R = const(1)
W = const(2)
RW = const(3)
U16 = const(0)
I16 = const(1)
U32 = const(2)
I32 = const(3)
U64 = const(4)
STR = const(5)


def address(rows, key):
    """The register a key sits at: drivers of a map take their addresses from the same rows the slave serves."""
    for r in rows:
        if r[4] == key:
            return r[0]
    raise KeyError(key)


def encode(img, rows, values):
    for addr, n, access, kind, key, scale in rows:
        if access == W or key not in values:
            continue
        v = values[key]
        if v is None:
            continue
        if scale != 1:
            v = v // scale if v >= 0 else -((-v) // scale)
        if kind == STR:
            img.set_string(addr, n, v)
        elif kind == U64:
            img.set_u32(addr, (v >> 32) & 0xFFFFFFFF)
            img.set_u32(addr + 2, v & 0xFFFFFFFF)
        elif kind == U32:
            img.set_u32(addr, v)
        elif kind == I32:
            img.set_i32(addr, v)
        elif kind == I16:
            img.set_i16(addr, v)
        else:
            img.set_u16(addr, v)


def limit(limits, key):
    """(lo, hi) of key in limit rows (key, lo, hi); KeyError if it has none."""
    for r in limits:
        if r[0] == key:
            return r[1], r[2]
    raise KeyError(key)


def _row_at(rows, a):
    for r in rows:
        if r[0] <= a < r[0] + r[1]:
            return r
    return None


def decode_write(rows, limits, addr, values):
    """values: uint16 registers written from addr on -> (exception_code, [(key, value), ...]).
    Whole values only: a read-only or unmapped register gives 02, part of a multi-register value or a value
    outside its limit row (key, lo, hi; inclusive, internal units) gives 03."""
    end = addr + len(values)
    out = []
    a = addr
    while a < end:
        row = _row_at(rows, a)
        if row is None or not row[2] & W:
            return 2, None
        raddr, n, access, kind, key, scale = row
        if a != raddr or a + n > end:
            return 3, None
        v = 0
        if kind == STR:
            raw = bytearray()
            for r in values[a - addr:a - addr + n]:
                raw.append(r >> 8)
                raw.append(r & 0xFF)
            v = bytes(raw).rstrip(b"\0").decode()
        else:
            for r in values[a - addr:a - addr + n]:
                v = (v << 16) | r
            if kind == I16 and v & 0x8000:
                v -= 0x10000
            elif kind == I32 and v & 0x80000000:
                v -= 0x100000000
            v *= scale
            lo, hi = limit(limits, key)
            if not lo <= v <= hi:
                return 3, None
        out.append((key, v))
        a += n
    return 0, out
