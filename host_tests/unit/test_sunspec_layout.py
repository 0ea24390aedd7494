import struct

import pytest

from loadpilot.registers import sunspec
from loadpilot.site import Reading


def u16(img, addr):
    return img.get_u16(addr)


def words(values):
    return list(struct.unpack(">%dH" % (len(values) // 2), values))


def f32_words(x):
    return list(struct.unpack(">HH", struct.pack(">f", x)))


@pytest.fixture
def cm():
    return sunspec.ChargingManagerMap({"serial": "LP-0001", "version": "0.1.0"}, 1, ["pv_min", "price"])


def test_addresses_match_the_seed(cm):
    img = cm.image
    assert bytes(img.buf[:4]) == b"SunS"
    assert cm.addr_common == 40002 and u16(img, 40002) == 1 and u16(img, 40003) == 66
    assert cm.addr_totals == [40070, 40196, 40322, 40448, 40574, 40700, 40826]
    for a in cm.addr_totals:
        assert u16(img, a) == 213 and u16(img, a + 1) == 124
    assert (cm.addr_params, u16(img, 40952), u16(img, 40953)) == (40952, 60000, 16)
    assert (cm.addr_flags, u16(img, 40970), u16(img, 40971)) == (40970, 60001, 32)
    assert (cm.addr_vars, u16(img, 41004), u16(img, 41005)) == (41004, 60002, 44)
    assert cm.addr_end == 41006 + 44 and u16(img, cm.addr_end) == 0xFFFF and u16(img, cm.addr_end + 1) == 0


def test_common_model_strings_and_unimplemented_values(cm):
    img = cm.image
    mn = bytes(img.buf[2 * 4:2 * 4 + 32])
    assert mn.rstrip(b"\0") == b"LoadPilot"
    sn = bytes(img.buf[2 * 52:2 * 52 + 32])
    assert sn.rstrip(b"\0") == b"LP-0001"
    assert u16(img, 40002 + 66) == 1  # DA is the Modbus ID
    assert img.get_u16(40070 + 2) == 0x7FC0 and img.get_u16(40070 + 3) == 0  # NaN until measured


def test_totals_are_encoded_as_float32_high_word_first(cm):
    r = Reading()
    r.update(current_ma=[16000, 15500, -200], voltage_v=[230, 231, 229], import_wh=1234567, export_wh=89)
    cm.set_total(0, r)
    a = 40070
    assert cm.image.get_float32(a + 2) == pytest.approx(31.3)
    assert cm.image.get_float32(a + 4) == 16.0 and cm.image.get_float32(a + 8) == pytest.approx(-0.2)
    assert cm.image.get_float32(a + 28) == 230 * 16 + 231 * 15500 // 1000 + 229 * -200 // 1000
    assert cm.image.get_float32(a + 68) == 1234567.0 and cm.image.get_float32(a + 60) == 89.0


def test_write_decoding_accepts_good_values(cm):
    vals = []
    for x in (32000.0, 2000.0, 0.0, 22000.0, 10000.0, 1.0, 0.0, 80.0):
        vals += f32_words(x)
    code, cmds = cm.decode_write(40954, vals)
    assert code == 0
    assert cmds[0] == ("param", "max_total_current", 32000)
    assert ("param", "lb_enabled", True) in cmds and ("param", "max_total_cur_prc", 80) in cmds
    code, cmds = cm.decode_write(40972 + 4, [1, 0, 1])
    assert code == 0 and cmds == [("flag", 4, 1), ("flag", 5, 0), ("flag", 6, 1)]
    code, cmds = cm.decode_write(41006 + 22 + 20, f32_words(0.25))
    assert code == 0 and cmds == [("var", "price", 0.25)]


@pytest.mark.parametrize("addr, values, code", [
    (40954, f32_words(float("nan")), 3),
    (40954, f32_words(float("inf")), 3),
    (40956, f32_words(-1.0), 3),            # negative reserve
    (40968, f32_words(100.5), 3),           # percent over 100
    (40964, f32_words(0.5), 3),             # load management is 0 or 1
    (40972, [2], 3),                        # a flag of 2
    (40954, [0x4700], 3),                   # half of a float pair
    (40955, [0x4700, 0], 3),                # starts on the low word
    (40952, [60000], 2),                    # model header is read-only
    (40070 + 4, f32_words(1.0), 2),         # a measured value is read-only
    (41006, [0x4142], 2),                   # variable names are read-only
    (40002, [1], 2),                        # common model
])
def test_bad_writes_are_refused_whole(cm, addr, values, code):
    got, cmds = cm.decode_write(addr, values)
    assert (got, cmds) == (code, None)


def test_a_bad_value_inside_a_multi_write_refuses_all(cm):
    vals = f32_words(32000.0) + f32_words(-5.0)
    assert cm.decode_write(40954, vals) == (3, None)


def test_device_map_layout_follows_configuration_order():
    devices = [{"dev_id": "E1"}, {"dev_id": "M1", "role": 3}, {"dev_id": "E2"}, {"dev_id": "M2", "role": 5},
               {"dev_id": "E3"}]
    dm = sunspec.DeviceMap(devices)
    img = dm.image
    a = 40002
    expect = [(113, 62), (213, 126), (113, 62), (213, 126), (124, 25), (113, 62)]
    for mid, length in expect:
        assert (u16(img, a), u16(img, a + 1)) == (mid, length)
        a += 2 + length
    assert a == dm.addr_end and u16(img, a) == 0xFFFF
    e2 = dm.find("E2", "evse")
    assert u16(img, e2 + 62) == 5 and u16(img, e2 + 63) == 2
    m2 = dm.find("M2", "meter")
    assert img.get_u16(m2 + 126) == 5 and struct.unpack(">h", img.buf[2 * (m2 + 127 - 40000):][:2])[0] == -2
    st = dm.find("M2", "storage")
    assert struct.unpack(">h", img.buf[2 * (st + 26 - 40000):][:2])[0] == -2
    r = Reading()
    r.update(current_ma=[10000, 10000, 10000], import_wh=5000)
    dm.set_evse("E2", r, 3)
    assert u16(img, e2 + 62) == 3 and img.get_float32(e2 + 2) == 30.0 and img.get_float32(e2 + 32) == 5000.0
