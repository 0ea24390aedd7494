# The "modbus" command (reference/http-api.md, "HTTP API"): the box's own Power Brain registers (8000+,
# registers/powerbrain.py) on device evse (the charge point's unit), meter1 and meter2 (the S0 meters), read and
# written as a Modbus master does: reads through the register image's handler (so they count as master access
# for the fail-safe, as a Modbus read does), writes through its on_write, which is the command layer. So an HTTP
# write and a Modbus write of the same register are one path with one validation.
#
# Decisions where the document is loose:
# - Plain addresses are 16-bit unsigned; "d" (2 registers) and "q" (4) are signed, as the document's
#   8000d = -821755904 shows; "s" is a string of the register row at that address (or of `count` registers).
# - read=all lists every register row of the device in address order, keyed as the document does ("8000d",
#   "8008s", "8050q"); the map is ours (8004 is 1 register, 8005 the build: registers/powerbrain.py).
# - The evse unit has no S0 registers (8041-8056): the document's evse examples writing 8044/8050q address
#   meter registers; on this box those are on meter1 (docs/http.md).
# - Errors answer as the document's one example does, a bare JSON string: "bad modbus register size" (the suffix
#   does not match the register at that address), "bad modbus register address", "bad modbus value".
from collections import OrderedDict

from loadpilot.api.commands import CommandError
from loadpilot.registers import powerbrain as pb

_SUFFIX_REGS = (("", 1), ("d", 2), ("q", 4))
_KIND_SUFFIX = ("", "", "d", "d", "q", "s")  # by registers/table.py kind: U16 I16 U32 I32 U64 STR
_MAX_REGS = 125


class ModbusAnswer(CommandError):
    """A refusal the transports answer with the bare message (the document's form), not an error object."""
    bare = True


class ModbusCommand:
    def __init__(self, slave, refresh=True):
        self.slave = slave      # registers/evse_slave.EvseSlaveService: the images and their writers
        self.refresh = refresh  # True: no refresh task runs (no slave port), so refresh before each request

    def _image(self, device):
        s = self.slave
        if device == "evse":
            return s.pb_evse, "evse"
        if device in ("meter1", "meter2"):
            i = int(device[5]) - 1
            if i < len(s.pb_s0):
                return s.pb_s0[i], "meter"
        raise ModbusAnswer("bad modbus device")

    def __call__(self, args, payload):
        img, kind = self._image(args.get("device", ""))
        if self.refresh:
            self.slave.refresh()
        if "read" in args:
            return self._read(img, kind, args)
        if "write" in args:
            return self._write(img, kind, args)
        raise ModbusAnswer("bad modbus request")

    # ---- reads

    def _regs(self, img, addr, n):
        out = bytearray(2 * n)
        rc = img.read_regs(3, addr, n, out, 0)
        if rc:
            raise ModbusAnswer("bad modbus register address")
        return out

    def _read(self, img, kind, args):
        what = args["read"]
        if what == "all":
            return self._all(img, kind)
        addr, suffix = _address(what)
        count = _count(args)
        rows = pb.table(kind)
        if suffix == "s":
            row = _row_at(rows, addr)
            n = count or (row[1] if row is not None and row[3] == 5 else 0)
            if not n:
                raise ModbusAnswer("bad modbus register size")
            return _text(self._regs(img, addr, n))
        size = _size(suffix)  # a read may start inside a value, as a Modbus read may
        n = count or 1
        raw = self._regs(img, addr, size * n)
        vals = [_word_value(raw, i * size, size) for i in range(n)]
        return vals if count is not None else vals[0]

    def _all(self, img, kind):
        rows = sorted(pb.table(kind))  # by address
        out = OrderedDict()  # the document's order; a plain dict's is not kept on MicroPython
        raw = self._regs(img, pb.BASE, pb.COUNT)
        for addr, n, access, k, key, scale in rows:
            off = addr - pb.BASE
            suffix = _KIND_SUFFIX[k]
            out["%d%s" % (addr, suffix)] = _text(raw[2 * off:2 * (off + n)]) if suffix == "s" \
                else _word_value(raw, off, n)
        return out

    # ---- writes

    def _write(self, img, kind, args):
        addr, suffix = _address(args["write"])
        if "values" in args:
            words = _words_list(args["values"])
        elif "value" in args:
            words = self._value_words(kind, addr, suffix, args["value"])
        else:
            raise ModbusAnswer("bad modbus request")
        data = bytearray(2 * len(words))
        for i, w in enumerate(words):
            data[2 * i] = w >> 8
            data[2 * i + 1] = w & 0xFF
        rc = img.write_regs(addr, len(words), data, 0)
        if rc == 2:
            raise ModbusAnswer("bad modbus register address")
        if rc:
            raise ModbusAnswer("bad modbus value")
        return "ok"

    def _value_words(self, kind, addr, suffix, text):
        row = _row_at(pb.table(kind), addr)
        if suffix == "s":
            if row is None or row[3] != 5:
                raise ModbusAnswer("bad modbus register size")
            raw = text.encode()
            if len(raw) > 2 * row[1]:
                raise ModbusAnswer("bad modbus value")
            raw = raw + bytes(2 * row[1] - len(raw))
            return [(raw[2 * i] << 8) | raw[2 * i + 1] for i in range(row[1])]
        size = _size(suffix)
        if row is not None and row[1] != size:
            raise ModbusAnswer("bad modbus register size")
        v = _int(text)
        bits = 16 * size
        if not -(1 << (bits - 1)) <= v < (1 << bits):
            raise ModbusAnswer("bad modbus value")
        v &= (1 << bits) - 1
        return [(v >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]


def _address(text):
    suffix = text[-1:] if text[-1:] in ("d", "q", "s") else ""
    digits = text[:-1] if suffix else text
    if not digits.isdigit() or len(digits) > 5:
        raise ModbusAnswer("bad modbus register address")
    return int(digits), suffix


def _size(suffix):
    for s, n in _SUFFIX_REGS:
        if s == suffix:
            return n
    raise ModbusAnswer("bad modbus register size")


def _count(args):
    if "count" not in args:
        return None
    c = args["count"]
    if not c.isdigit() or not 1 <= int(c) <= _MAX_REGS:
        raise ModbusAnswer("bad modbus register size")
    return int(c)


def _int(text):
    t = text.strip()
    if not (t.isdigit() or (t[:1] == "-" and t[1:].isdigit())) or len(t) > 21:
        raise ModbusAnswer("bad modbus value")
    return int(t)


def _words_list(text):
    t = text.strip()
    if t[:1] != "[" or t[-1:] != "]":
        raise ModbusAnswer("bad modbus value")
    out = []
    for part in t[1:-1].split(","):
        v = _int(part)
        if not -0x8000 <= v <= 0xFFFF:
            raise ModbusAnswer("bad modbus value")
        out.append(v & 0xFFFF)
        if len(out) > _MAX_REGS - 2:  # function 16 carries at most 123 registers
            raise ModbusAnswer("bad modbus register size")
    return out


def _row_at(rows, addr):
    for r in rows:
        if r[0] == addr:
            return r
    return None


def _word_value(raw, off, n):
    """n registers at register offset off of raw: n == 1 unsigned, 2 and 4 signed (high word first)."""
    v = 0
    for i in range(n):
        v = (v << 16) | (raw[2 * (off + i)] << 8) | raw[2 * (off + i) + 1]
    if n > 1 and v >> (16 * n - 1):
        v -= 1 << (16 * n)
    return v


def _text(raw):
    end = 0
    while end < len(raw) and raw[end]:
        end += 1
    return bytes(raw[:end]).decode()
