# A register image: one preallocated bytearray of count*2 bytes (big-endian registers) served through
# memoryview. 1,100 registers cost 2.2 KB plus a few small objects, instead of one object per register.
#
# Atomic multi-register values: set_u32/set_i32/set_float32 write both words with one struct.pack_into
# call. The loop is cooperative and the image is only touched from tasks (never from an ISR or a thread),
# so a reader, which runs between awaits, sees either both old words or both new words, never a mix.
import struct
from micropython import const

from loadpilot.modbus.pdu import ILLEGAL_ADDRESS, ILLEGAL_FUNCTION
from loadpilot.redact import redact

WRITE_APPLIED = const(-1)  # on_write returns this when it applied (or deliberately dropped) the write itself
_VIEW_SLOTS = const(8)


class RegisterImage:
    """Registers base_addr .. base_addr+count-1 as a Modbus handler (see pdu.py).

    on_write(addr, count, data, data_off) validates a write before it lands: it returns 0 to let the image
    store the bytes, an exception code to refuse the whole write (the image stays unchanged), or
    WRITE_APPLIED when it stored the values itself. on_read(addr, count), if given, runs before a read is
    served (to refresh live values) and returns 0 or an exception code."""

    def __init__(self, base_addr, count, functions=(3, 4, 6, 16), on_write=None, on_read=None):
        if count < 1 or base_addr < 0 or base_addr + count > 0x10000:
            raise ValueError("register range")
        self.base = base_addr
        self.count = count
        self.buf = bytearray(count * 2)
        self.mv = memoryview(self.buf)
        self.functions = tuple(functions)
        self.on_write = on_write
        self.on_read = on_read
        self.read_only = None  # bytearray bitmap, bit set = register refuses writes (ILLEGAL_ADDRESS)
        # Served ranges as ready memoryviews: a poller reads the same few ranges over and over, and slicing
        # a memoryview allocates, so each distinct range is sliced once and reused.
        self._view_keys = [-1] * _VIEW_SLOTS
        self._views = [None] * _VIEW_SLOTS
        self._view_next = 0

    # -- handler interface (pdu.serve) --

    def read_regs(self, fc, addr, count, out, out_off):
        if fc not in self.functions:
            return ILLEGAL_FUNCTION
        off = addr - self.base
        if off < 0 or off + count > self.count:
            return ILLEGAL_ADDRESS
        if self.on_read is not None:
            rc = self.on_read(addr, count)
            if rc:
                return rc
        out[out_off:out_off + count * 2] = self._view(off, count)
        return 0

    def write_regs(self, addr, count, data, data_off):
        off = addr - self.base
        if off < 0 or off + count > self.count:
            return ILLEGAL_ADDRESS
        ro = self.read_only
        if ro is not None:
            for r in range(off, off + count):
                if ro[r >> 3] & (1 << (r & 7)):
                    return ILLEGAL_ADDRESS
        if self.on_write is not None:
            rc = self.on_write(addr, count, data, data_off)
            if rc == WRITE_APPLIED:
                return 0
            if rc:
                return rc
        b = self.buf
        j = off * 2
        for i in range(data_off, data_off + count * 2):
            b[j] = data[i]
            j += 1
        return 0

    def _view(self, off, count):
        key = (off << 8) | count
        keys = self._view_keys
        for i in range(_VIEW_SLOTS):
            if keys[i] == key:
                return self._views[i]
        i = self._view_next
        self._view_next = (i + 1) % _VIEW_SLOTS
        v = self.mv[off * 2:(off + count) * 2]
        keys[i] = key
        self._views[i] = v
        return v

    # -- firmware side: read-only registers --

    def set_read_only(self, addr, count=1, read_only=True):
        if self.read_only is None:
            self.read_only = bytearray((self.count + 7) >> 3)
        ro = self.read_only
        off = self._off(addr, count)
        for r in range(off, off + count):
            if read_only:
                ro[r >> 3] |= 1 << (r & 7)
            else:
                ro[r >> 3] &= ~(1 << (r & 7)) & 0xFF

    def is_read_only(self, addr):
        ro = self.read_only
        r = self._off(addr, 1)
        return ro is not None and bool(ro[r >> 3] & (1 << (r & 7)))

    # -- firmware side: typed values (big-endian, high word first) --

    def _off(self, addr, count):
        off = addr - self.base
        if off < 0 or off + count > self.count:
            raise ValueError("register %d+%d outside image" % (addr, count))
        return off

    def set_u16(self, addr, value):
        j = self._off(addr, 1) * 2
        self.buf[j] = (value >> 8) & 0xFF
        self.buf[j + 1] = value & 0xFF

    def set_i16(self, addr, value):
        self.set_u16(addr, value & 0xFFFF)

    def get_u16(self, addr):
        j = self._off(addr, 1) * 2
        return (self.buf[j] << 8) | self.buf[j + 1]

    def get_i16(self, addr):
        v = self.get_u16(addr)
        return v - 0x10000 if v & 0x8000 else v

    def set_u32(self, addr, value):
        struct.pack_into(">I", self.buf, self._off(addr, 2) * 2, value & 0xFFFFFFFF)

    def set_i32(self, addr, value):
        struct.pack_into(">i", self.buf, self._off(addr, 2) * 2, value)

    def get_u32(self, addr):
        return struct.unpack_from(">I", self.buf, self._off(addr, 2) * 2)[0]

    def get_i32(self, addr):
        return struct.unpack_from(">i", self.buf, self._off(addr, 2) * 2)[0]

    def set_float32(self, addr, value):
        struct.pack_into(">f", self.buf, self._off(addr, 2) * 2, value)

    def get_float32(self, addr):
        return struct.unpack_from(">f", self.buf, self._off(addr, 2) * 2)[0]

    def set_string(self, addr, nregs, text):
        """Store text (str or bytes) in nregs registers, two characters per register, NUL padded;
        text longer than the field is cut, after redaction (a URL password never reaches a register)."""
        j = self._off(addr, nregs) * 2
        if isinstance(text, str):
            text = redact(text).encode()
        n = nregs * 2
        m = len(text) if len(text) < n else n
        b = self.buf
        for i in range(m):
            b[j + i] = text[i]
        for i in range(m, n):
            b[j + i] = 0

    def get_string(self, addr, nregs):
        j = self._off(addr, nregs) * 2
        raw = bytes(self.buf[j:j + nregs * 2])
        end = raw.find(b"\x00")
        return (raw if end < 0 else raw[:end]).decode()

    def set_regs(self, addr, data):
        """Copy raw register bytes (len(data) must be even) into the image at addr."""
        n = len(data)
        j = self._off(addr, n >> 1) * 2
        self.buf[j:j + n] = data

    def fill(self, value=0):
        for i in range(len(self.buf)):
            self.buf[i] = value & 0xFF
