# Import-check stand-in for the ESP32 `machine` module on the unix port (host_tests/integration/test_build.py
# puts this directory on the path of that one check). Only the names hal/esp32.py touches at import or build.
class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, gpio, mode=-1, pull=None, value=None):
        self.gpio = gpio
        self._v = value or 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = v

    def irq(self, handler=None, trigger=0):
        self.handler = handler


class UART:
    def __init__(self, uid, **kw):
        self.kw = kw

    def write(self, buf):
        return len(buf)

    def any(self):
        return 0

    def readinto(self, buf, n=None):
        return None

    def txdone(self):
        return True


class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        self.duty = duty_u16

    def duty_u16(self, d):
        self.duty = d


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        pass

    def read_uv(self):
        return 1250000


class WDT:
    timeouts = []  # every timeout asked for, so a check can see who started or stretched it

    def __init__(self, timeout=5000):
        WDT.timeouts.append(timeout)

    def feed(self):
        pass


def reset():
    raise SystemExit("machine.reset")
