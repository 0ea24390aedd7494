# ESP32 hardware layer: the same surface as hal/unix.py on machine.UART/Pin/PWM/ADC/WDT. Pin numbers come
# from the board file (boards/*.json, wiring in boards/README.md); a name the board lacks raises ValueError.
import time

import machine

try:
    import network
except ImportError:  # a build without networking still runs the charge point
    network = None

_RX_BUF = 512  # bytes; a Modbus RTU frame is at most 256, so a whole frame fits while the loop is busy
_CP_BURST_US = 1100  # CP: sample a little over one PWM period per tick...
_CP_BURST_MAX = 200  # ...but never more reads than this
_TX_BUF = 512  # write() only copies into this ring buffer, so it returns before the line is sent


def _char_us(baud, bits, parity, stop):
    bits_per_char = 1 + bits + (0 if parity is None else 1) + stop
    return (bits_per_char * 1000000 + baud - 1) // baud


def _parity(p):
    # machine.UART wants None, 0 (even) or 1 (odd); accept the letters installers write as well
    if p is None or p == "N" or p == "n":
        return None
    if p == 0 or p == "E" or p == "e":
        return 0
    if p == 1 or p == "O" or p == "o":
        return 1
    raise ValueError("parity must be None, 0/'E' (even) or 1/'O' (odd), got %r" % (p,))


class Uart:
    """An RS485 port: machine.UART plus the transceiver's driver-enable pin (DE and /RE tied)."""

    def __init__(self, name, spec, baud, bits, parity, stop):
        self.name = name
        self.baud = baud
        p = _parity(parity)
        self.char_us = _char_us(baud, bits, p, stop)
        self._de = None
        if spec.get("de") is not None:
            self._de = machine.Pin(spec["de"], machine.Pin.OUT, value=0)  # receive until we talk
        # timeout=0: a read returns what is buffered at once, never waits for the line
        self._u = machine.UART(spec["id"], baudrate=baud, bits=bits, parity=p, stop=stop, tx=spec["tx"],
                               rx=spec["rx"], rxbuf=_RX_BUF, txbuf=_TX_BUF, timeout=0, timeout_char=0)
        self._has_txdone = hasattr(self._u, "txdone")
        self._tx_end_us = time.ticks_us()

    def set_de(self, v):
        if self._de is not None:
            self._de.value(1 if v else 0)

    def write(self, buf):
        start = time.ticks_us()
        if time.ticks_diff(self._tx_end_us, start) > 0:
            start = self._tx_end_us
        self._tx_end_us = time.ticks_add(start, len(buf) * self.char_us)
        n = self._u.write(buf)
        return len(buf) if n is None else n

    def tx_done(self):
        """True once the last stop bit has left the pin, so DE may drop without cutting the frame."""
        now = time.ticks_us()
        # never before the frame's time on the wire: right after write() the bytes can still sit in the
        # driver's ring buffer with the shifter idle, and txdone() would say "done" before the first bit
        if time.ticks_diff(now, self._tx_end_us) < 0:
            return False
        if self._has_txdone:
            return bool(self._u.txdone())
        # ports without txdone(): the estimate alone, one character of margin
        return time.ticks_diff(now, time.ticks_add(self._tx_end_us, self.char_us)) >= 0

    def any(self):
        return self._u.any()

    def readinto(self, buf, n=None):
        limit = len(buf) if n is None else n
        avail = self._u.any()
        if not avail or limit <= 0:
            return 0
        if avail < limit:
            limit = avail
        got = self._u.readinto(buf, limit)
        return 0 if got is None else got  # None: nothing arrived (EAGAIN)

    def close(self):
        self.set_de(0)
        self._u.deinit()


class Output:
    def __init__(self, name, pin):
        self.name = name
        self._pin = machine.Pin(pin, machine.Pin.OUT, value=0)

    def value(self, v=None):
        if v is None:
            return self._pin.value()
        self._pin.value(1 if v else 0)


class Input:
    def __init__(self, name, spec, handler):
        self.name = name
        pull = spec.get("pull")
        if pull == "up":
            pull = machine.Pin.PULL_UP
        elif pull == "down":
            pull = machine.Pin.PULL_DOWN
        self._pin = machine.Pin(spec["pin"], machine.Pin.IN, pull)
        self._invert = 1 if spec.get("invert") else 0
        if handler is not None:
            # a soft IRQ on both edges; the handler gets the input's name, as on the unix board
            self._handler = handler
            self._pin.irq(handler=self._irq, trigger=machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)

    def _irq(self, pin):
        self._handler(self.name)

    def value(self):
        return self._pin.value() ^ self._invert


class Pwm:
    def __init__(self, name, spec):
        self.name = name
        self.freq_hz = spec["freq_hz"]
        self._invert = bool(spec.get("invert"))
        self._d = 0
        self._pwm = machine.PWM(machine.Pin(spec["pin"]), freq=self.freq_hz, duty_u16=self._u16(0))

    def _u16(self, d):
        if self._invert:  # the driver stage inverts: drive the complement so the line shows d
            d = 10000 - d
        return (d * 65535 + 5000) // 10000  # 0.01 % steps onto 0..65535, rounded

    def duty_cpct(self, d=None):
        if d is None:
            return self._d
        d = int(d)
        if not 0 <= d <= 10000:
            raise ValueError("PWM %s: duty %d outside 0..10000 (0.01 %% steps)" % (self.name, d))
        self._d = d
        self._pwm.duty_u16(self._u16(d))


class Adc:
    def __init__(self, name, spec):
        self.name = name
        self._num = spec.get("scale_num", 1)
        self._den = spec.get("scale_den", 1) * 1000  # read_uv() is in microvolts
        self._off = spec.get("offset_mv", 0)
        # 11 dB: the widest input range (about 0.15..2.45 V on the ESP32, to 3.1 V on the S3)
        self._adc = machine.ADC(machine.Pin(spec["pin"]), atten=machine.ADC.ATTN_11DB)

    def read_mv(self):
        # read_uv() uses the chip's factory calibration; the board's divider maps it back to the input
        return self._adc.read_uv() * self._num // self._den + self._off


class Hal:
    name = "esp32"

    def __init__(self, board, fs_root=""):
        self.board = board
        self.fs_root = fs_root
        self.lan = None  # an Ethernet NIC, once a board with features.ethernet brings one up

    def _spec(self, kind, name):
        spec = self.board.get(kind, {}).get(name)
        if spec is None:
            raise ValueError("board %s has no %s %r (it has: %s)" % (
                self.board.get("name"), kind, name, ", ".join(sorted(self.board.get(kind, {}))) or "none"))
        return spec

    def uart(self, name, baud=9600, bits=8, parity=None, stop=1):
        return Uart(name, self._spec("uarts", name), baud, bits, parity, stop)

    def output(self, name):
        return Output(name, self._spec("outputs", name))

    def input(self, name, handler=None):
        return Input(name, self._spec("inputs", name), handler)

    def pwm(self, name):
        return Pwm(name, self._spec("pwm", name))

    def adc(self, name):
        return Adc(name, self._spec("adc", name))

    def sample_cp(self, adc, low_adc, pwm_on, out):
        """With PWM on, sample for a little more than one 1 kHz period so both halves are seen even at 10 %
        duty (100 us high); a constant output needs only a few reads. Allocation-free (every CP tick)."""
        hi = -100000
        lo = 100000
        t0 = time.ticks_us()
        n = 0
        while True:
            v = adc.read_mv()
            if v > hi:
                hi = v
            if v < lo:
                lo = v
            n += 1
            if n >= _CP_BURST_MAX:
                break
            if n >= 4 and (not pwm_on or time.ticks_diff(time.ticks_us(), t0) >= _CP_BURST_US):
                break
        out[0] = hi
        out[1] = lo

    def watchdog(self, timeout_ms):
        return machine.WDT(timeout=timeout_ms)  # cannot be stopped once started: feed() it

    def network(self):
        """(connected, ip) of the station interface, else of the Ethernet NIC; (False, None) without."""
        for nic in (self._wlan(), self.lan):
            if nic is not None and nic.isconnected():
                return (True, _addr(nic))
        return (False, None)

    def _wlan(self):
        if network is None or not hasattr(network, "WLAN"):
            return None
        return network.WLAN(network.STA_IF)

    def dns_server(self):
        """The DNS server DHCP gave the connected interface (loadpilot/dns.py asks it without blocking), or None."""
        if network is not None and hasattr(network, "ipconfig"):  # MicroPython 1.24+: one DNS for all NICs
            try:
                return network.ipconfig("dns")
            except (OSError, ValueError):
                pass
        for nic in (self._wlan(), self.lan):
            if nic is not None and nic.isconnected():
                return nic.ifconfig()[3]
        return None

    def set_clock(self, epoch_s):
        """Set the RTC (UTC) from a backend's time when nothing better (NTP) has set it."""
        import time
        t = time.gmtime(epoch_s - (946684800 if time.gmtime(0)[0] == 2000 else 0))  # the port's epoch
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))

    def reset(self):
        machine.reset()

    def ctl_address(self):
        return None  # the host control socket exists only on the unix board

    def serve_ctl(self, handlers):
        raise OSError("no control socket on an ESP32 board")


def _addr(nic):
    if hasattr(nic, "ipconfig"):
        return nic.ipconfig("addr4")[0]
    return nic.ifconfig()[0]
