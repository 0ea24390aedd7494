"""CPython tests of the RTU building blocks: CRC16 vectors, COM-settings parsing and timing, and RTU frame
assembly (t3.5 end, t1.5 gaps, CRC, runts, overlong frames, resynchronisation) on a stepped clock,
including property tests over random frames, splits, corruptions and garbage."""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import mpshim
from loadpilot.modbus import crc, rtu, serial_settings

# ---------------------------------------------------------------------------------------------------- CRC


@pytest.mark.parametrize("data,expected", [
    (b"123456789", 0x4B37),  # the CRC-16/MODBUS check value
    (bytes([0x01, 0x03, 0x00, 0x00, 0x00, 0x0A]), 0xCDC5),  # read 10 holding registers from unit 1: C5 CD
    (bytes([0x11, 0x03, 0x00, 0x6B, 0x00, 0x03]), 0x8776),  # the spec's example request, CRC bytes 76 87
    (b"", 0xFFFF),
])
def test_crc16_known_vectors(data, expected):
    assert crc.crc16(data, 0, len(data)) == expected


def _bitwise_crc(data):
    c = 0xFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return c


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 20))
def test_crc16_table_matches_the_bitwise_definition(data, start):
    start = min(start, len(data))
    assert crc.crc16(data, start, len(data)) == _bitwise_crc(data[start:])


def test_append_crc_puts_the_low_byte_first_and_check_accepts_it():
    buf = bytearray(10)
    buf[:6] = bytes([0x01, 0x03, 0x00, 0x00, 0x00, 0x0A])
    assert crc.append_crc(buf, 6) == 8
    assert bytes(buf[6:8]) == b"\xc5\xcd"
    assert crc.check(buf, 8)
    buf[3] ^= 1
    assert not crc.check(buf, 8)

# ------------------------------------------------------------------------------------------ COM settings


@pytest.mark.parametrize("text,port,baud,bits,parity,stop", [
    ("COM1,9600,8,n,1", "COM1", 9600, 8, None, 1),
    ("COM1,9600,8,e,1", "COM1", 9600, 8, "e", 1),
    ("com2, 19200, 8, O, 2", "COM2", 19200, 8, "o", 2),
    ("COM1,115200,7,e,1", "COM1", 115200, 7, "e", 1),
    ("COM3,1200,8,N,2", "COM3", 1200, 8, None, 2),
])
def test_parse_accepts_the_documented_form(text, port, baud, bits, parity, stop):
    s = serial_settings.parse(text)
    assert (s.port, s.baud, s.bits, s.parity, s.stop) == (port, baud, bits, parity, stop)
    assert s.uart_args() == (baud, bits, parity, stop)
    assert serial_settings.parse(s.text()) == s


@pytest.mark.parametrize("text,names", [
    ("COM1,9600,8,n", "5 parts"),
    ("COM1,9600,8,n,1,1", "5 parts"),
    ("", "5 parts"),
    ("USB0,9600,8,n,1", "port"),
    ("COM,9600,8,n,1", "port"),
    ("COM0,9600,8,n,1", "port"),
    ("COM1,fast,8,n,1", "baud rate 'fast'"),
    ("COM1,-9600,8,n,1", "baud rate"),
    ("COM1,50,8,n,1", "baud rate 50 out of range"),
    ("COM1,9600,9,n,1", "data bits 9"),
    ("COM1,9600,5,n,1", "data bits 5"),
    ("COM1,9600,8,x,1", "parity 'x'"),
    ("COM1,9600,8,none,1", "parity"),
    ("COM1,9600,8,n,3", "stop bits 3"),
    ("COM1,9600,8,n,1.5", "stop bits"),
])
def test_parse_names_the_bad_part(text, names):
    with pytest.raises(ValueError) as e:
        serial_settings.parse(text)
    assert names in str(e.value)


def test_parse_rejects_non_text():
    with pytest.raises(ValueError):
        serial_settings.parse(None)


@pytest.mark.parametrize("text,char_us,t35_us,t15_us", [
    ("COM1,9600,8,n,1", 1042, 3646, 1563),    # 10 bits per character
    ("COM1,9600,8,e,1", 1146, 4011, 1719),    # 11 bits
    ("COM1,9600,8,n,2", 1146, 4011, 1719),    # 11 bits
    ("COM1,19200,8,e,1", 573, 2006, 860),     # still computed at 19200
    ("COM1,2400,8,e,2", 5000, 17500, 7500),   # 12 bits
    ("COM1,38400,8,n,1", 261, 1750, 750),     # above 19200: fixed values
    ("COM1,115200,8,e,1", 96, 1750, 750),
])
def test_timing_from_baud_and_frame_bits(text, char_us, t35_us, t15_us):
    s = serial_settings.parse(text)
    assert (s.char_us, s.t35_us, s.t15_us) == (char_us, t35_us, t15_us)


def test_com_port_maps_to_the_board_uart():
    assert serial_settings.parse("COM1,9600,8,n,1").board_uart() == "rs485_1"
    assert serial_settings.parse("COM2,9600,8,n,1").board_uart() == "rs485_2"

# ------------------------------------------------------------------------------------------ RTU framing

T35 = 3646
T15 = 1563
STEP_US = 250  # how often the fake loop polls; well below t1.5 so every real gap is observed


class FakeUart:
    char_us = 1042

    def __init__(self):
        self.inbox = bytearray()
        self.sent = []
        self.de = []

    def any(self):
        return len(self.inbox)

    def readinto(self, buf, n):
        k = min(n, len(self.inbox))
        buf[:k] = self.inbox[:k]
        del self.inbox[:k]
        return k

    def write(self, b):
        self.sent.append(bytes(b))
        return len(b)

    def tx_done(self):
        return True

    def set_de(self, v):
        self.de.append(v)


class Line:
    """A receiving port on a stepped clock: deliver chunks with gaps, collect the frames poll() returns."""

    def __init__(self, check_gaps=True):
        self.clock = mpshim.FakeClock(1000)
        mpshim.use_clock(self.clock)
        self.uart = FakeUart()
        self.port = rtu.RtuPort(self.uart, T35, T15, check_gaps)
        self.frames = []

    def _poll(self):
        n = self.port.poll()
        if n:
            self.frames.append(bytes(self.port.rx[:n]))

    def wait(self, us):
        while us > 0:
            step = min(STEP_US, us)
            self.clock.advance_ms(step / 1000)
            us -= step
            self._poll()

    def send(self, data, gap_before_us=0):
        self.wait(gap_before_us)
        self.uart.inbox += data
        self._poll()

    def settle(self):
        self.wait(T35 + 2 * STEP_US)
        return self.frames


@pytest.fixture(autouse=True)
def _real_clock_after():
    yield
    mpshim.use_clock(None)


def frame(unit, pdu):
    b = bytearray([unit]) + bytearray(pdu) + b"\0\0"
    crc.append_crc(b, len(b) - 2)
    return bytes(b)


READ = frame(1, b"\x03\x00\x00\x00\x0a")


def test_a_frame_ends_after_t35_of_silence_not_before():
    line = Line()
    line.send(READ)
    line.wait(T35 - 2 * STEP_US)
    assert line.frames == []
    assert line.settle() == [READ]


def test_a_frame_in_pieces_with_short_gaps_is_one_frame():
    line = Line()
    line.send(READ[:3])
    line.send(READ[3:5], gap_before_us=T15 - STEP_US)
    line.send(READ[5:], gap_before_us=1000)
    assert line.settle() == [READ]


def test_a_gap_over_t15_inside_a_frame_drops_it():
    line = Line()
    line.send(READ[:4])
    line.send(READ[4:], gap_before_us=T15 + STEP_US)
    assert line.settle() == []
    assert line.port.gap_errors == 1
    line.send(READ, gap_before_us=T35)  # the next frame is fine again
    assert line.settle() == [READ]


def test_gap_rule_can_be_switched_off_for_bursty_drivers():
    line = Line(check_gaps=False)
    line.send(READ[:4])
    line.send(READ[4:], gap_before_us=T15 + STEP_US)
    assert line.settle() == [READ]


def test_a_late_poll_never_invents_a_gap():
    # the loop was busy for 3 ms: both halves are already there when it looks, so no silence was observed
    line = Line()
    line.uart.inbox += READ[:4]
    line.clock.advance_ms(3)
    line.uart.inbox += READ[4:]
    line._poll()
    assert line.settle() == [READ]


def test_bad_crc_runt_and_overlong_frames_are_dropped_and_counted():
    line = Line()
    bad = bytearray(READ)
    bad[-1] ^= 0xFF
    line.send(bytes(bad))
    line.send(b"\x01\x03", gap_before_us=T35 + STEP_US)
    line.send(bytes(range(256)) + b"\x01\x02\x03", gap_before_us=T35 + STEP_US)
    assert line.settle() == []
    p = line.port
    assert (p.crc_errors, p.runts, p.overlong) == (1, 1, 1)
    line.send(READ)
    assert line.settle() == [READ]


def test_garbage_then_silence_resynchronises():
    line = Line()
    line.send(b"\xff\x00\x13\x37garbage")
    line.send(READ, gap_before_us=T35 + STEP_US)
    assert line.settle() == [READ]


def test_garbage_glued_to_a_frame_without_silence_is_one_bad_frame():
    line = Line()
    line.send(b"\x55\xaa" + READ)
    assert line.settle() == []
    assert line.port.crc_errors == 1


def test_complete_now_takes_an_answer_as_soon_as_its_length_is_there():
    line = Line()
    answer = frame(1, b"\x03\x04\x00\x01\x00\x02")
    line.uart.inbox += answer
    line.port.poll()
    want = rtu.response_len(line.port.rx, line.port.rx_len)
    assert want == len(answer)
    assert line.port.complete_now(want) == len(answer)
    assert line.port.rx_len == 0


@pytest.mark.parametrize("pdu,expected", [
    (b"\x83\x02", 5), (b"\x03\x04", 9), (b"\x04\xfa", 255), (b"\x06\x00\x01\x00\x02", 8),
    (b"\x10\x00\x01\x00\x02", 8), (b"\x2b\x0e", 0),
])
def test_response_len_from_the_header(pdu, expected):
    b = bytes([1]) + pdu
    assert rtu.response_len(b, len(b)) == expected


# -- properties: at least 5,000 examples in all ----------------------------------------------------------

PROPS = settings(max_examples=1100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pdus = st.binary(min_size=1, max_size=rtu.MAX_FRAME - 3)
units = st.integers(1, 247)


def _split(data, cuts):
    points = sorted(set(c % (len(data) + 1) for c in cuts))
    pieces, last = [], 0
    for p in points + [len(data)]:
        if p > last:
            pieces.append(data[last:p])
            last = p
    return pieces


@PROPS
@given(units, pdus, st.lists(st.integers(0, 300), max_size=6), st.lists(st.integers(0, T15 - STEP_US), max_size=6))
def test_prop_any_valid_frame_in_any_split_arrives_intact(unit, pdu, cuts, gaps):
    f = frame(unit, pdu)
    line = Line()
    for i, piece in enumerate(_split(f, cuts)):
        line.send(piece, gap_before_us=gaps[i % len(gaps)] if gaps and i else 0)
    assert line.settle() == [f]


@PROPS
@given(units, pdus, st.integers(0, 10 ** 6), st.integers(1, 255))
def test_prop_any_corrupted_byte_makes_the_frame_vanish(unit, pdu, where, flip):
    f = bytearray(frame(unit, pdu))
    f[where % len(f)] ^= flip  # CRC16 catches every error burst of up to 16 bits
    line = Line()
    line.send(bytes(f))
    assert line.settle() == []
    assert line.port.crc_errors == 1


@PROPS
@given(st.binary(min_size=1, max_size=400), units, pdus)
def test_prop_garbage_then_silence_then_a_frame_yields_the_frame(garbage, unit, pdu):
    f = frame(unit, pdu)
    line = Line()
    line.send(garbage)
    line.send(f, gap_before_us=T35 + STEP_US)
    got = line.settle()
    assert got[-1:] == [f]
    # the garbage itself only comes through if it happens to be a well-formed frame (CRC and length)
    garbage_is_a_frame = 4 <= len(garbage) <= 256 and crc.check(garbage, len(garbage))
    assert got[:-1] == ([garbage] if garbage_is_a_frame else [])


@PROPS
@given(units, pdus, st.integers(1, 10 ** 6), st.integers(T15 + STEP_US, T35 - 2 * STEP_US))
def test_prop_a_long_gap_anywhere_inside_drops_the_frame(unit, pdu, where, gap):
    f = frame(unit, pdu)
    cut = 1 + where % (len(f) - 1)
    line = Line()
    line.send(f[:cut])
    line.send(f[cut:], gap_before_us=gap)
    assert line.settle() == []
    assert line.port.gap_errors == 1


@PROPS
@given(st.binary(min_size=rtu.MAX_FRAME + 1, max_size=600), units, pdus)
def test_prop_overlong_input_is_dropped_and_the_next_frame_served(junk, unit, pdu):
    f = frame(unit, pdu)
    line = Line()
    line.send(junk)
    line.send(f, gap_before_us=T35 + STEP_US)
    assert line.settle() == [f]
    assert line.port.overlong == 1
