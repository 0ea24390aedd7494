# An OMCCI-style charging station (registers/omcci.py rows give the addresses):
#   read 122 (CP state A=1..E=5, which is the site status as is) and 212..227 (currents mA, energy Wh,
#   power W, voltages V); on each new contact write 131 (safe current, A) and 132 (communication timeout, s);
#   set-point: 1000 (HEMS current limit, A; 0 = no charging).
from loadpilot.devices import decode
from loadpilot.devices.driver import Wallbox, wire_currents
from loadpilot.registers import omcci, table


def _addr(key):
    return table.address(omcci.ROWS, key)


A_STATE = _addr("cp_state")
A_CUR1 = _addr("current_l1_ma")
A_ENERGY = _addr("energy_wh")
A_POWER = _addr("power_w")
A_VOLT1 = _addr("voltage_l1_v")
A_SAFE = _addr("safe_current_ma")
A_TIMEOUT = _addr("comm_timeout_s")
A_HEMS = _addr("hems_current_limit_ma")
MEAS_COUNT = A_VOLT1 + 6 - A_CUR1


class Omcci(Wallbox):
    def __init__(self, dev, client):
        Wallbox.__init__(self, dev, client)
        self.fail_safe_s = dev.get("fail_safe_secs", 60)
        self.safe_ma = dev.get("fail_safe_current", 6000)
        self.ready = False
        self.cp_state = None

    def lost(self):
        Wallbox.lost(self)
        self.ready = False

    async def poll(self, state, now_ms):
        c = self.client
        if not self.ready:
            await c.write_multiple(A_SAFE, [self.safe_ma // 1000, self.fail_safe_s], unit=self.unit)
            self.ready = True
        r = await c.read_holding(A_STATE, 1, unit=self.unit)
        cp = decode.u16(r, 0)
        m = await c.read_holding(A_CUR1, MEAS_COUNT, unit=self.unit)
        cur = [decode.i32(m, 2 * i) for i in range(3)]
        volts = [decode.u32(m, A_VOLT1 - A_CUR1 + 2 * i) for i in range(3)]
        state.reading.update(current_ma=wire_currents(self.wiring, cur),
                             voltage_v=wire_currents(self.wiring, volts) if volts[0] else None,
                             power_w=decode.i32(m, A_POWER - A_CUR1), import_wh=decode.u32(m, A_ENERGY - A_CUR1),
                             now_ms=now_ms)
        self.cp_state = cp
        state.set_status(cp if 1 <= cp <= 5 else 5)

    async def apply(self, sp, now_ms):
        if sp is None:
            return False
        enable, current_ma, _phases = sp  # the OMCCI map has no phase switching register
        if enable is None:  # a phase wish only
            return False
        wire = current_ma // 1000 if enable else 0
        if not self.due(wire, now_ms):
            return False
        await self.client.write_single(A_HEMS, wire, unit=self.unit)
        self.done(wire, now_ms)
        return True

    def info(self):
        d = Wallbox.info(self)
        d["cp_state"] = self.cp_state
        return d
