"""pdu.serve and RegisterImage on CPython: what a Modbus client gets back for good and bad requests."""
import struct

import pytest

from loadpilot.modbus import pdu
from loadpilot.modbus.image import WRITE_APPLIED, RegisterImage


def call(handler, req):
    req = bytes(req)
    out = bytearray(pdu.MAX_PDU)
    n = pdu.serve(handler, memoryview(req), len(req), memoryview(out))
    return bytes(out[:n])


def rd(fc, addr, qty):
    return struct.pack(">BHH", fc, addr, qty)


def wm(addr, values, qty=None, nbytes=None):
    data = b"".join(struct.pack(">H", v) for v in values)
    qty = len(values) if qty is None else qty
    nbytes = len(data) if nbytes is None else nbytes
    return struct.pack(">BHHB", 16, addr, qty, nbytes) + data


@pytest.fixture
def img():
    im = RegisterImage(1000, 200)
    for i in range(200):
        im.set_u16(1000 + i, i * 3)
    return im


def test_read_holding_returns_register_values(img):
    resp = call(img, rd(3, 1010, 3))
    assert resp == bytes([3, 6]) + struct.pack(">HHH", 30, 33, 36)


def test_read_input_and_full_125(img):
    resp = call(img, rd(4, 1000, 125))
    assert resp[:2] == bytes([4, 250])
    assert struct.unpack(">125H", resp[2:]) == tuple(i * 3 for i in range(125))


@pytest.mark.parametrize("qty", [0, 126, 0xFFFF])
def test_read_quantity_out_of_range_is_illegal_value(img, qty):
    assert call(img, rd(3, 1000, qty)) == bytes([0x83, 3])


@pytest.mark.parametrize("addr,qty", [(999, 1), (1199, 2), (1200, 1), (0, 10), (0xFFFF, 2)])
def test_read_outside_image_is_illegal_address(img, addr, qty):
    assert call(img, rd(3, addr, qty)) == bytes([0x83, 2])


def test_unknown_or_unoffered_function_is_illegal_function(img):
    assert call(img, rd(1, 1000, 1)) == bytes([0x81, 1])
    assert call(img, bytes([0x2B, 0x0E, 1, 0])) == bytes([0xAB, 1])
    assert call(img, bytes([0x83, 0, 0, 0, 1])) == bytes([0x83, 1])
    ro = RegisterImage(0, 10, functions=(4,))
    assert call(ro, rd(3, 0, 1)) == bytes([0x83, 1])
    assert call(ro, struct.pack(">BHH", 6, 0, 1)) == bytes([0x86, 1])


def test_wrong_pdu_length_is_illegal_value(img):
    assert call(img, rd(3, 1000, 1)[:4]) == bytes([0x83, 3])
    assert call(img, rd(3, 1000, 1) + b"\x00") == bytes([0x83, 3])
    assert call(img, bytes([6, 0x03, 0xE8, 0])) == bytes([0x86, 3])
    assert call(img, b"") == b""


def test_write_single_echoes_and_stores(img):
    req = struct.pack(">BHH", 6, 1005, 0xBEEF)
    assert call(img, req) == req
    assert img.get_u16(1005) == 0xBEEF


def test_write_multiple_stores_and_answers_addr_qty(img):
    assert call(img, wm(1100, [1, 2, 3])) == struct.pack(">BHH", 16, 1100, 3)
    assert [img.get_u16(1100 + i) for i in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("req", [
    wm(1000, [1, 2], nbytes=3),        # byte count does not match quantity
    wm(1000, [1, 2], qty=3),           # quantity does not match byte count
    wm(1000, [0] * 124),               # over 123
    wm(1000, [1, 2])[:-1],             # truncated data
    bytes([16, 0x03, 0xE8, 0, 0, 0]),  # zero quantity
])
def test_malformed_write_multiple_is_illegal_value_and_changes_nothing(img, req):
    before = bytes(img.buf)
    assert call(img, req) == bytes([0x90, 3])
    assert bytes(img.buf) == before


def test_write_partly_outside_image_changes_nothing(img):
    before = bytes(img.buf)
    assert call(img, wm(1198, [7, 7, 7])) == bytes([0x90, 2])
    assert bytes(img.buf) == before


def test_read_only_register_refuses_write(img):
    img.set_read_only(1003)
    before = bytes(img.buf)
    assert call(img, wm(1002, [5, 5])) == bytes([0x90, 2])
    assert call(img, struct.pack(">BHH", 6, 1003, 1)) == bytes([0x86, 2])
    assert bytes(img.buf) == before
    assert call(img, struct.pack(">BHH", 6, 1002, 1)) == struct.pack(">BHH", 6, 1002, 1)
    img.set_read_only(1003, read_only=False)
    assert not img.is_read_only(1003)
    assert call(img, struct.pack(">BHH", 6, 1003, 9))[0] == 6


def test_on_write_can_refuse_accept_or_apply():
    seen = []

    def hook(addr, count, data, off):
        vals = [(data[off + 2 * i] << 8) | data[off + 2 * i + 1] for i in range(count)]
        seen.append((addr, vals))
        if vals[0] > 100:
            return pdu.ILLEGAL_VALUE
        if vals[0] == 42:
            return WRITE_APPLIED
        return 0

    im = RegisterImage(0, 4, on_write=hook)
    assert call(im, struct.pack(">BHH", 6, 1, 500)) == bytes([0x86, 3])
    assert im.get_u16(1) == 0
    assert call(im, struct.pack(">BHH", 6, 1, 50))[0] == 6
    assert im.get_u16(1) == 50
    assert call(im, struct.pack(">BHH", 6, 1, 42))[0] == 6
    assert im.get_u16(1) == 50  # the hook applied it itself (here: dropped)
    assert seen == [(1, [500]), (1, [50]), (1, [42])]


def test_handler_exception_becomes_device_failure():
    class Broken:
        functions = (3,)

        def read_regs(self, *a):
            raise RuntimeError("boom")

    assert call(Broken(), rd(3, 0, 1)) == bytes([0x83, 4])

    class Odd:
        functions = (3,)

        def read_regs(self, *a):
            return 999

    assert call(Odd(), rd(3, 0, 1)) == bytes([0x83, 4])


class Coils:
    functions = (1, 2, 5, 15)

    def __init__(self):
        self.bits = [0] * 40

    def read_bits(self, fc, addr, count, out, off):
        if addr + count > 40:
            return pdu.ILLEGAL_ADDRESS
        for i in range(count):
            if self.bits[addr + i]:
                out[off + (i >> 3)] |= 1 << (i & 7)
        return 0

    def write_bits(self, addr, count, data, off):
        if addr + count > 40:
            return pdu.ILLEGAL_ADDRESS
        for i in range(count):
            self.bits[addr + i] = (data[off + (i >> 3)] >> (i & 7)) & 1
        return 0


def test_coil_functions_when_handler_offers_them():
    h = Coils()
    assert call(h, struct.pack(">BHH", 5, 3, 0xFF00)) == struct.pack(">BHH", 5, 3, 0xFF00)
    assert call(h, struct.pack(">BHH", 5, 3, 0x1234)) == bytes([0x85, 3])
    assert call(h, struct.pack(">BHHB", 15, 8, 10, 2) + bytes([0b101, 0b10])) == struct.pack(">BHH", 15, 8, 10)
    assert call(h, rd(1, 0, 19)) == bytes([1, 3, 0b1000, 0b101, 0b10])
    assert call(h, rd(1, 0, 2001)) == bytes([0x81, 3])
    assert call(h, struct.pack(">BHHB", 15, 8, 10, 1) + b"\x01") == bytes([0x8F, 3])
    assert call(h, rd(2, 39, 2)) == bytes([0x82, 2])


def test_typed_values_are_big_endian_high_word_first():
    im = RegisterImage(40000, 20)
    im.set_u32(40000, 0x12345678)
    im.set_i32(40002, -2)
    im.set_float32(40004, 230.5)
    im.set_i16(40006, -300)
    im.set_string(40007, 4, "LoadPilot")
    assert bytes(im.buf[0:8]) == bytes.fromhex("12345678fffffffe")
    assert bytes(im.buf[8:12]) == struct.pack(">f", 230.5)
    assert im.get_u32(40000) == 0x12345678 and im.get_i32(40002) == -2
    assert im.get_float32(40004) == 230.5 and im.get_i16(40006) == -300
    assert im.get_string(40007, 4) == "LoadPilo"
    im.set_string(40007, 4, b"ab")
    assert bytes(im.buf[14:22]) == b"ab\x00\x00\x00\x00\x00\x00"
    with pytest.raises(ValueError):
        im.set_u32(40019, 1)


def test_router_routes_by_unit_id(img):
    r = pdu.Router()
    r.add(1, img)
    r.add(200, img)
    assert r.get(1) is img and r.get(2) is None
    r.remove(1)
    r.remove(77)
    assert r.get(1) is None and r.units() == [200]
    with pytest.raises(ValueError):
        r.add(256, img)


def test_read_after_write_sees_new_values_through_cached_views(img):
    assert call(img, rd(3, 1000, 2)) == bytes([3, 4, 0, 0, 0, 3])
    img.set_u16(1001, 77)
    assert call(img, rd(3, 1000, 2)) == bytes([3, 4, 0, 0, 0, 77])
    for a in range(20):  # more distinct ranges than cache slots
        assert call(img, rd(3, 1000 + a, 1)) == bytes([3, 2]) + struct.pack(">H", img.get_u16(1000 + a))
