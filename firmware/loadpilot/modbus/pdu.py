# Modbus PDU serving: validate a request PDU, dispatch it to a handler, write the response PDU.
# Transport-neutral: the TCP server (MBAP) and the RTU slave both call serve() with a memoryview of the PDU
# (function code first) and a preallocated memoryview for the answer. Reads allocate nothing.
#
# Handler interface (RegisterImage in image.py is the usual one):
#   functions                                   tuple/set of supported function codes
#   read_regs(fc, addr, count, out, out_off)    FC3/4: copy count registers big-endian into out; 0 or exc code
#   write_regs(addr, count, data, data_off)     FC6/16: data holds count*2 bytes at data_off; 0 or exc code
#   read_bits(fc, addr, count, out, out_off)    optional, FC1/2: pack bits LSB first into out; 0 or exc code
#   write_bits(addr, count, data, data_off)     optional, FC5/15: packed bits LSB first; 0 or exc code
# Async handlers (e.g. the RTU proxy) set is_async = True and offer `async handle(req, req_len, out) -> int`;
# transports check getattr(handler, "is_async", False) and await handle() instead of calling serve().
from micropython import const

ILLEGAL_FUNCTION = const(1)
ILLEGAL_ADDRESS = const(2)
ILLEGAL_VALUE = const(3)
DEVICE_FAILURE = const(4)
GATEWAY_PATH_UNAVAILABLE = const(0x0A)
GATEWAY_NO_TARGET = const(0x0B)

READ_COILS = const(1)
READ_DISCRETE_INPUTS = const(2)
READ_HOLDING = const(3)
READ_INPUT = const(4)
WRITE_SINGLE_COIL = const(5)
WRITE_SINGLE = const(6)
WRITE_MULTIPLE_COILS = const(15)
WRITE_MULTIPLE = const(16)

MAX_READ_REGS = const(125)
MAX_WRITE_REGS = const(123)
MAX_READ_BITS = const(2000)
MAX_WRITE_BITS = const(1968)
MAX_PDU = const(253)  # largest PDU Modbus allows; size response buffers to this

_coil_buf = bytearray(1)  # FC5 hands its single bit to write_bits through this (serve is not re-entered)


class Router:
    """Unit ID -> handler. One per transport (TCP server, RTU slave) or shared between them."""

    def __init__(self):
        self._units = {}

    def add(self, unit_id, handler):
        if not 0 <= unit_id <= 255:
            raise ValueError("unit id")
        self._units[unit_id] = handler

    def remove(self, unit_id):
        self._units.pop(unit_id, None)

    def get(self, unit_id):
        return self._units.get(unit_id)

    def units(self):
        return sorted(self._units)


def exception(out, fc, code):
    """Write an exception response (fc|0x80, code) into out; returns its length (2)."""
    out[0] = (fc | 0x80) & 0xFF
    out[1] = code
    return 2


def _check(rc):
    # A handler may only answer with a real exception code; anything else counts as a device failure.
    if 0 < rc < 256:
        return rc
    return DEVICE_FAILURE


def serve(handler, req, req_len, out):
    """Serve one request PDU req[0:req_len] with handler; write the response PDU to out, return its length.

    Checks follow the Modbus application protocol order: function code (01), then quantity, byte count and
    length (03), then address range (02, reported by the handler), then execution (04). Returns 0 only
    for an empty PDU, which has no function code to answer with."""
    if req_len < 1:
        return 0
    fc = req[0]
    if fc & 0x80 or fc not in handler.functions:
        return exception(out, fc, ILLEGAL_FUNCTION)
    try:
        if fc == READ_HOLDING or fc == READ_INPUT:
            if req_len != 5:
                return exception(out, fc, ILLEGAL_VALUE)
            qty = (req[3] << 8) | req[4]
            if qty < 1 or qty > MAX_READ_REGS:
                return exception(out, fc, ILLEGAL_VALUE)
            addr = (req[1] << 8) | req[2]
            if addr + qty > 0x10000:
                return exception(out, fc, ILLEGAL_ADDRESS)
            rc = handler.read_regs(fc, addr, qty, out, 2)
            if rc:
                return exception(out, fc, _check(rc))
            out[0] = fc
            out[1] = qty * 2
            return 2 + qty * 2
        if fc == WRITE_SINGLE:
            if req_len != 5:
                return exception(out, fc, ILLEGAL_VALUE)
            addr = (req[1] << 8) | req[2]
            rc = handler.write_regs(addr, 1, req, 3)
            if rc:
                return exception(out, fc, _check(rc))
            return _echo(req, out, 5)
        if fc == WRITE_MULTIPLE:
            if req_len < 6:
                return exception(out, fc, ILLEGAL_VALUE)
            qty = (req[3] << 8) | req[4]
            nbytes = req[5]
            if qty < 1 or qty > MAX_WRITE_REGS or nbytes != qty * 2 or req_len != 6 + nbytes:
                return exception(out, fc, ILLEGAL_VALUE)
            addr = (req[1] << 8) | req[2]
            if addr + qty > 0x10000:
                return exception(out, fc, ILLEGAL_ADDRESS)
            rc = handler.write_regs(addr, qty, req, 6)
            if rc:
                return exception(out, fc, _check(rc))
            return _echo(req, out, 5)
        if fc == READ_COILS or fc == READ_DISCRETE_INPUTS:
            if req_len != 5:
                return exception(out, fc, ILLEGAL_VALUE)
            qty = (req[3] << 8) | req[4]
            if qty < 1 or qty > MAX_READ_BITS:
                return exception(out, fc, ILLEGAL_VALUE)
            addr = (req[1] << 8) | req[2]
            if addr + qty > 0x10000:
                return exception(out, fc, ILLEGAL_ADDRESS)
            nbytes = (qty + 7) >> 3
            for i in range(nbytes):  # handlers only set bits, so clear the area first
                out[2 + i] = 0
            rc = handler.read_bits(fc, addr, qty, out, 2)
            if rc:
                return exception(out, fc, _check(rc))
            out[0] = fc
            out[1] = nbytes
            return 2 + nbytes
        if fc == WRITE_SINGLE_COIL:
            if req_len != 5:
                return exception(out, fc, ILLEGAL_VALUE)
            if req[4] != 0 or (req[3] != 0xFF and req[3] != 0):
                return exception(out, fc, ILLEGAL_VALUE)
            _coil_buf[0] = 1 if req[3] else 0
            rc = handler.write_bits((req[1] << 8) | req[2], 1, _coil_buf, 0)
            if rc:
                return exception(out, fc, _check(rc))
            return _echo(req, out, 5)
        if fc == WRITE_MULTIPLE_COILS:
            if req_len < 6:
                return exception(out, fc, ILLEGAL_VALUE)
            qty = (req[3] << 8) | req[4]
            nbytes = req[5]
            if qty < 1 or qty > MAX_WRITE_BITS or nbytes != (qty + 7) >> 3 or req_len != 6 + nbytes:
                return exception(out, fc, ILLEGAL_VALUE)
            addr = (req[1] << 8) | req[2]
            if addr + qty > 0x10000:
                return exception(out, fc, ILLEGAL_ADDRESS)
            rc = handler.write_bits(addr, qty, req, 6)
            if rc:
                return exception(out, fc, _check(rc))
            return _echo(req, out, 5)
    except Exception:  # a broken handler must cost one exception answer, never the server
        return exception(out, fc, DEVICE_FAILURE)
    # Listed by the handler but not a function code this module knows how to frame.
    return exception(out, fc, ILLEGAL_FUNCTION)


def _echo(req, out, n):
    for i in range(n):
        out[i] = req[i]
    return n


def expected_request_len(buf, off, avail):
    """Length of the request PDU starting at buf[off] if it can be told from its header, else -1 when more
    bytes are needed, or 0 when the function code has no fixed framing here. For RTU framing by length."""
    if avail < 1:
        return -1
    fc = buf[off]
    if fc in (1, 2, 3, 4, 5, 6):
        return 5
    if fc == 15 or fc == 16:
        if avail < 6:
            return -1
        return 6 + buf[off + 5]
    return 0
