# Unix-port hardware layer: a virtual board for the host. UARTs are pseudo-terminals, GPIO/PWM/ADC are
# values that tests and the simulator set and read over a JSON-lines control socket, and flash wear is
# modelled by FlashBlockDevice (see flashdev.py).
import asyncio
import json
import os
import select
import time

try:
    import termios
except ImportError:  # CPython unit tests import this module without a tty
    termios = None


def _env(name):
    getenv = getattr(os, "getenv", None)
    return getenv(name) if getenv else None


HEALTHY_LOW_MV = -12000  # the CP line's low half while PWM runs, unless a test sets cp_low (diode fault)
# at power-on: no vehicle (A, +12 V) and a 32 A cable coded on PP (220 ohm to a 1 kohm pull-up at 3.3 V)
_POWER_ON_ADC = {"cp": 12000, "pp": 3300 * 220 // (220 + 1000)}


class VirtualBoard:
    """All pin levels, PWM duties and ADC voltages of the simulated board, by name. LOADPILOT_VB_ADC
    ("cp=6000,pp=595") sets ADC voltages before the firmware starts: a car already plugged in at boot."""

    def __init__(self):
        self.outputs = {}
        self.inputs = {}
        self.handlers = {}
        self.pwm = {}
        self.adc_mv = dict(_POWER_ON_ADC)
        self.wdt_feeds = 0
        self.events = []  # (ticks_us, name, value) of output, PWM and ADC changes, bounded, for timing tests
        # LOADPILOT_VB_EVENTS=0 records none: the ESP32 HAL has no such record, and its 256 tuples (about 9 KB on
        # a 32-bit build) would count in tools/bench/heap.py's figures as if the board held them
        self.max_events = int(_env("LOADPILOT_VB_EVENTS") or 256)
        self.mirrors = {}  # output -> input that follows it (a healthy contactor's feedback contact)
        for part in (_env("LOADPILOT_VB_ADC") or "").split(","):
            name, _, mv = part.partition("=")
            if name and mv:
                self.adc_mv[name.strip()] = int(mv)

    def set_output(self, name, v):
        if self.outputs.get(name) != v:
            self.outputs[name] = v
            self._event(name, v)
            # the feedback follows each command; a test that sets the input afterwards simulates a welded or
            # dead contactor
            mirror = self.mirrors.get(name)
            if mirror is not None:
                self.set_input(mirror, v)

    def _event(self, name, v):
        if not self.max_events:
            return
        if len(self.events) >= self.max_events:
            self.events.pop(0)
        self.events.append((time.ticks_us(), name, v))

    def set_adc(self, name, mv):
        self.adc_mv[name] = mv
        self._event("adc." + name, mv)  # so timing tests see when the virtual EV changed the line

    def set_input(self, name, v):
        old = self.inputs.get(name, 0)
        self.inputs[name] = v
        h = self.handlers.get(name)
        if h is not None and old != v:
            h(name)

    def snapshot(self):
        return {"outputs": self.outputs, "inputs": self.inputs, "pwm": self.pwm, "adc_mv": self.adc_mv,
                "wdt_feeds": self.wdt_feeds}


class Output:
    def __init__(self, vb, name):
        self._vb = vb
        self.name = name
        vb.set_output(name, 0)

    def value(self, v=None):
        if v is None:
            return self._vb.outputs.get(self.name, 0)
        self._vb.set_output(self.name, 1 if v else 0)


class Input:
    def __init__(self, vb, name, handler):
        self._vb = vb
        self.name = name
        vb.inputs.setdefault(name, 0)
        if handler is not None:
            vb.handlers[name] = handler

    def value(self):
        return self._vb.inputs.get(self.name, 0)


class Pwm:
    def __init__(self, vb, name, freq_hz):
        self._vb = vb
        self.name = name
        self.freq_hz = freq_hz
        vb.pwm[name] = [freq_hz, 0]

    def duty_cpct(self, d=None):
        if d is None:
            return self._vb.pwm[self.name][1]
        if self._vb.pwm[self.name][1] != d:
            self._vb.pwm[self.name][1] = d
            self._vb._event("pwm." + self.name, d)  # a boot-safety test samples every PWM edge from the first


class Adc:
    def __init__(self, vb, name):
        self._vb = vb
        self.name = name
        vb.adc_mv.setdefault(name, 0)

    def read_mv(self):
        return self._vb.adc_mv.get(self.name, 0)


class Watchdog:
    def __init__(self, vb, timeout_ms):
        self._vb = vb
        self.timeout_ms = timeout_ms

    def feed(self):
        self._vb.wdt_feeds += 1


class Uart:
    """An RS485 port on a pseudo-terminal. Transmission time is modelled from the baud rate, so the
    driver-enable timing seen on the virtual board matches a real line."""

    def __init__(self, vb, name, path, baud, bits, parity, stop):
        self._vb = vb
        self.name = name
        self.path = path
        self.baud = baud
        bits_per_char = 1 + bits + (0 if parity is None else 1) + stop
        self.char_us = (bits_per_char * 1000000 + baud - 1) // baud
        self._f = open(path, "r+b")
        if termios is not None:
            termios.setraw(self._f.fileno())
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self._one = bytearray(1)
        self._tx_end_us = time.ticks_us()
        self._de = name + ".de"
        vb.set_output(self._de, 0)

    def set_de(self, v):
        self._vb.set_output(self._de, 1 if v else 0)

    def write(self, buf):
        self._f.write(buf)
        start = time.ticks_us()
        if time.ticks_diff(self._tx_end_us, start) > 0:
            start = self._tx_end_us
        self._tx_end_us = time.ticks_add(start, len(buf) * self.char_us)
        return len(buf)

    def tx_done(self):
        return time.ticks_diff(time.ticks_us(), self._tx_end_us) >= 0

    def any(self):
        # ipoll: poll() builds a result list on every call, and the RTU read path must not allocate
        for _ in self._poll.ipoll(0):
            return 1
        return 0

    def readinto(self, buf, n=None):
        # a pty read blocks until the buffer is full, so take one byte per ready poll: never blocks
        limit = len(buf) if n is None else n
        got = 0
        one = self._one
        while got < limit and self.any():
            if self._f.readinto(one) != 1:
                break
            buf[got] = one[0]
            got += 1
        return got

    def close(self):
        self._f.close()


class Hal:
    name = "unix"
    listen_host = "127.0.0.1"  # servers on the host never listen beyond loopback

    def __init__(self, board, fs_root=""):
        self.board = board
        self.fs_root = fs_root
        self.vb = VirtualBoard()

    def uart(self, name, baud=9600, bits=8, parity=None, stop=1):
        spec = self.board["uarts"].get(name)
        if spec is None:
            raise ValueError("board has no UART %r" % name)
        path = _env("LOADPILOT_UART_" + name.upper()) or spec.get("path")
        if not path:
            raise ValueError("UART %s: set LOADPILOT_UART_%s or uarts.%s.path to a pty" % (name, name.upper(), name))
        return Uart(self.vb, name, path, baud, bits, parity, stop)

    def output(self, name):
        if name not in self.board["outputs"]:
            raise ValueError("board has no output %r" % name)
        if name == "contactor" and self.board.get("features", {}).get("contactor_feedback") and \
                "contactor_feedback" in self.board["inputs"]:
            self.vb.mirrors[name] = "contactor_feedback"
        return Output(self.vb, name)

    def input(self, name, handler=None):
        if name not in self.board["inputs"]:
            raise ValueError("board has no input %r" % name)
        return Input(self.vb, name, handler)

    def pwm(self, name):
        spec = self.board["pwm"].get(name)
        if spec is None:
            raise ValueError("board has no PWM %r" % name)
        return Pwm(self.vb, name, spec["freq_hz"])

    def adc(self, name):
        if name not in self.board["adc"]:
            raise ValueError("board has no ADC %r" % name)
        return Adc(self.vb, name)

    def sample_cp(self, adc, low_adc, pwm_on, out):
        """The virtual EV sets the CP line's high half (`cp`); the low half is `cp_low` if the board has it (a
        diode-fault test sets it), else a healthy -12 V while PWM runs."""
        hi = adc.read_mv()
        out[0] = hi
        out[1] = (low_adc.read_mv() if low_adc is not None else HEALTHY_LOW_MV) if pwm_on else hi

    def watchdog(self, timeout_ms):
        return Watchdog(self.vb, timeout_ms)

    def network(self):
        return (True, "127.0.0.1")

    def serial(self):
        return _env("LOADPILOT_SERIAL") or "unix-sim"

    def dns_server(self):
        """LOADPILOT_DNS=ip[:port] (tests run their own DNS server), else the first nameserver in resolv.conf."""
        v = _env("LOADPILOT_DNS")
        if v:
            return v
        try:
            with open("/etc/resolv.conf") as f:
                for line in f:
                    w = line.split()
                    if len(w) >= 2 and w[0] == "nameserver" and "." in w[1]:
                        return w[1]
        except OSError:
            pass
        return None

    def set_clock(self, epoch_s):
        # the host's clock is not ours to set: the OCPP view reports the backend's time offset instead
        pass

    def reset(self):
        raise SystemExit(0)

    def _ctl_events(self, req):
        """The output/ADC event log [(ticks_us, name, value)]; {"clear": true} empties it after reading."""
        ev = list(self.vb.events)
        if req.get("clear"):
            del self.vb.events[:]
        return ev

    async def _ctl_pulse_adc(self, req):
        """{"name": "cp", "mv": 12000, "ms": 300}: the line at mv for ms, then back to what it was (a test
        unplugs a car and plugs the next one in between two looks of an observer, with the loop's own timing)."""
        name = req["name"]
        was = self.vb.adc_mv.get(name, 0)
        self.vb.set_adc(name, int(req["mv"]))
        await asyncio.sleep_ms(int(req["ms"]))
        self.vb.set_adc(name, int(req.get("back", was)))
        return was

    def ctl_address(self):
        """LOADPILOT_CTL=host:port enables the control socket the tests and `make sim` use."""
        addr = _env("LOADPILOT_CTL")
        if not addr:
            return None
        host, _, port = addr.rpartition(":")
        return (host or "127.0.0.1", int(port))

    def serve_ctl(self, handlers):
        addr = self.ctl_address()
        handlers.setdefault("board", lambda req: self.vb.snapshot())
        handlers.setdefault("set_adc", lambda req: self.vb.set_adc(req["name"], int(req["mv"])))
        handlers.setdefault("events", self._ctl_events)
        handlers.setdefault("pulse_adc", self._ctl_pulse_adc)
        handlers.setdefault("set_input", lambda req: self.vb.set_input(req["name"], 1 if req["value"] else 0))
        return _ctl_server(addr, handlers)


async def _ctl_client(reader, writer, handlers):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                req = json.loads(line)
                fn = handlers.get(req.get("op"))
                if fn is None:
                    reply = {"error": "unknown op %r" % req.get("op")}
                else:
                    res = fn(req)
                    if hasattr(res, "send"):  # an async handler
                        res = await res
                    reply = {"ok": res}
            except Exception as e:  # the control channel answers every line, even a bad one
                reply = {"error": "%s: %s" % (type(e).__name__, e)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


async def _ctl_server(addr, handlers):
    server = await asyncio.start_server(lambda r, w: _ctl_client(r, w, handlers), addr[0], addr[1])
    print("ctl listening on %s:%d" % addr)
    while True:
        await asyncio.sleep_ms(3600000)
