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
        self._buf = bytearray(512)

    def any(self):
        for _ in self._poll.ipoll(0):  # ipoll: no result list per call, like the real UART's any()
            return 1
        return 0

    def read(self, n=-1):
        # a pty read blocks until the buffer is full, so take one byte per ready poll; like the real
        # machine.UART.read(), the only allocation is the bytes object returned
        buf = self._buf
        limit = len(buf) if n < 0 else min(n, len(buf))
        k = 0
        while k < limit and self.any():
            if self._f.readinto(self._one) != 1:
                break
            buf[k] = self._one[0]
            k += 1
        return bytes(buf[:k]) if k else None

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
