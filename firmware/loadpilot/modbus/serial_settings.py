# COM settings as the installer types them, e.g. "COM1,9600,8,n,1" (port, baud, data bits, parity n/e/o,
# stop bits), and the Modbus RTU timing that follows from them.
#
# Timing (Modbus over serial line, 2.5.1.1): a character is start + data + parity + stop bits; a frame ends
# after 3.5 character times of silence and a gap over 1.5 character times inside a frame breaks it. Above
# 19200 baud the fixed values 1750 us and 750 us apply, so fast lines are not held to sub-millisecond gaps.

_MIN_BAUD = 300
_MAX_BAUD = 1000000
FIXED_TIMING_ABOVE_BAUD = 19200
FIXED_T35_US = 1750
FIXED_T15_US = 750


class SerialSettings:
    def __init__(self, port, baud, bits=8, parity=None, stop=1):
        self.port = port
        self.baud = baud
        self.bits = bits
        self.parity = parity
        self.stop = stop

    @property
    def frame_bits(self):
        """Bits per character on the wire: start + data + parity + stop."""
        return 1 + self.bits + (0 if self.parity is None else 1) + self.stop

    @property
    def char_us(self):
        return _ceil_div(self.frame_bits * 1000000, self.baud)

    @property
    def t35_us(self):
        if self.baud > FIXED_TIMING_ABOVE_BAUD:
            return FIXED_T35_US
        return _ceil_div(35 * self.frame_bits * 1000000, 10 * self.baud)

    @property
    def t15_us(self):
        if self.baud > FIXED_TIMING_ABOVE_BAUD:
            return FIXED_T15_US
        return _ceil_div(15 * self.frame_bits * 1000000, 10 * self.baud)

    def uart_args(self):
        """(baud, bits, parity, stop) in the order hal.uart(name, ...) takes them."""
        return (self.baud, self.bits, self.parity, self.stop)

    def board_uart(self):
        """The board UART a COM port stands for: COM1 is rs485_1, COM2 rs485_2 (the terminal numbering)."""
        p = self.port
        if p[:3] == "COM":
            return "rs485_" + p[3:]
        return p

    def __eq__(self, other):
        return isinstance(other, SerialSettings) and self.text() == other.text()

    def text(self):
        return "%s,%d,%d,%s,%d" % (self.port, self.baud, self.bits, self.parity or "n", self.stop)

    def __repr__(self):
        return "SerialSettings(%r)" % self.text()


def _ceil_div(a, b):
    return (a + b - 1) // b


def _int(part, what, allowed=None, lo=None, hi=None):
    s = part.strip()
    if not s or not s.isdigit():
        raise ValueError("COM settings: %s %r is not a number" % (what, part))
    v = int(s)
    if allowed is not None and v not in allowed:
        raise ValueError("COM settings: %s %d not supported (use %s)" % (what, v, " or ".join(str(a) for a in allowed)))
    if lo is not None and not lo <= v <= hi:
        raise ValueError("COM settings: %s %d out of range %d..%d" % (what, v, lo, hi))
    return v


def parse(text):
    """"COM1,9600,8,n,1" -> SerialSettings. Raises ValueError naming the bad part."""
    if not isinstance(text, str):
        raise ValueError("COM settings: expected text like COM1,9600,8,n,1, got %r" % (text,))
    parts = text.split(",")
    if len(parts) != 5:
        raise ValueError("COM settings %r: expected 5 parts port,baud,data bits,parity,stop bits "
                         "(e.g. COM1,9600,8,n,1), got %d" % (text, len(parts)))
    port = parts[0].strip().upper()
    if len(port) < 4 or port[:3] != "COM" or not port[3:].isdigit() or int(port[3:]) < 1:
        raise ValueError("COM settings: port %r must be COM1, COM2, ..." % parts[0])
    baud = _int(parts[1], "baud rate", lo=_MIN_BAUD, hi=_MAX_BAUD)
    bits = _int(parts[2], "data bits", allowed=(7, 8))
    p = parts[3].strip().lower()
    if p not in ("n", "e", "o"):
        raise ValueError("COM settings: parity %r must be n, e or o" % parts[3])
    stop = _int(parts[4], "stop bits", allowed=(1, 2))
    return SerialSettings("COM%d" % int(port[3:]), baud, bits, None if p == "n" else p, stop)
