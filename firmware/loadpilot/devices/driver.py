# The small driver interface every device kind implements. A driver talks to its device through a client with
# the request methods of modbus.tcp_client.ModbusTcpClient / rtu_master.RtuDevice (read_holding, read_input,
# write_single, write_multiple; all take unit=), so it does not care which transport the device sits on.
#   poll(state, now_ms)   read the device and put its reading / status into state (a site.DeviceState);
#                         raise (ModbusError, ModbusTransportError, OSError, ValueError) when it cannot
#   apply(sp, now_ms)     wallboxes only: write the set-point sp = (enable, current_ma, phases) when it changed
#                         or a keep-alive is due; sp None = nothing asked yet, write nothing
#   lost()                the device stopped answering: the next contact starts over (re-init, re-send set-point)
#   info()                extra fields for the devices view
import time


def wire_currents(wiring, cur):
    """The device's L1..L3 currents placed on the site's phases: wiring "231" means device L1 is on site L2,
    device L2 on site L3, device L3 on site L1."""
    if wiring == "123":
        return cur
    out = [0, 0, 0]
    for i in range(3):
        out[ord(wiring[i]) - 49] = cur[i]
    return out


class Driver:
    is_evse = False

    def __init__(self, dev, client):
        self.dev = dev
        self.client = client
        self.unit = dev.get("id", 1)
        self.wiring = dev.get("wiring", "123")

    async def poll(self, state, now_ms):
        raise NotImplementedError

    async def apply(self, sp, now_ms):
        return False

    def lost(self):
        pass

    def info(self):
        return {}


class Wallbox(Driver):
    """Set-point bookkeeping shared by the wallbox drivers: write on change, and again before the device's
    fail-safe window runs out (every fifth of it), so a healthy master never lets a slave fall back."""
    is_evse = True
    MIN_KEEPALIVE_MS = 1000

    def __init__(self, dev, client):
        Driver.__init__(self, dev, client)
        self.written = None       # the wire values last written, None = nothing yet / device was lost
        self.written_ms = 0
        self.writes = 0
        self.fail_safe_s = 0      # the device's own window; 0 = it has none (then write on change only)

    def keepalive_ms(self):
        if not self.fail_safe_s:
            return 0
        return max(self.MIN_KEEPALIVE_MS, self.fail_safe_s * 200)

    def due(self, wire, now_ms):
        if wire != self.written:
            return True
        ka = self.keepalive_ms()
        return ka and time.ticks_diff(now_ms, self.written_ms) >= ka

    def done(self, wire, now_ms):
        self.written = wire
        self.written_ms = now_ms
        self.writes += 1

    def lost(self):
        self.written = None

    def info(self):
        return {"setpoint_writes": self.writes, "fail_safe_s": self.fail_safe_s}
