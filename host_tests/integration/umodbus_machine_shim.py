# A stand-in `machine` module so the micropython-modbus (umodbus) RTU master runs on the unix port: its
# serial layer needs machine.UART and machine.Pin, which the unix port lacks. UART(...) opens the pty named
# by PTY (set before constructing) in raw mode; any()/read() never block. Test scaffolding only.
import select

try:
    import termios
except ImportError:
    termios = None

PTY = None


class UART:
    def __init__(self, uart_id, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None):
        self._f = open(PTY, "r+b")
        if termios is not None:
            termios.setraw(self._f.fileno())
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self._one = bytearray(1)

    def any(self):
        return 1 if self._poll.poll(0) else 0

    def read(self, n=-1):
        # a pty read blocks until the buffer is full, so take one byte per ready poll
        got = bytearray()
        while (n < 0 or len(got) < n) and self._poll.poll(0):
            if self._f.readinto(self._one) != 1:
                break
            got += self._one
        return bytes(got) if got else None

    def write(self, buf):
        self._f.write(buf)
        return len(buf)


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, pin, mode=None):
        self.v = 0

    def on(self):
        self.v = 1

    def off(self):
        self.v = 0
