# Another LoadPilot / Power Brain wallbox, read and steered through its 8000+ map (registers/powerbrain.py;
# addresses come from those rows, not retyped here).
#   one read per poll: 8083..8095 (fail-safe window, relay_select, CP state, limit, enable, charging current),
#   plus 8058..8069 (energy, power, currents) when the box has a meter (8112, read once per contact);
#   set-point: 8093 (current, 0.1 A) and 8094 (enable) in one write; the phase wish to 8087 relay_select
#   (0 = 3-phase, 1 = 1-phase) on its own, only if 8113 bit 8 (read once per contact, as evcc's cfos.go does)
#   says the box may switch while a car is plugged in: such a box runs the switch itself (stop, CP pause,
#   relay, resume), so a wish is written also while it charges. Switches are at least
#   MIN_SWITCH_INTERVAL_MS apart, the local charge point's own rule.
import time

from loadpilot.devices import decode
from loadpilot.devices.driver import Wallbox, wire_currents
from loadpilot.evse.state_machine import MIN_SWITCH_INTERVAL_MS
from loadpilot.modbus.errors import ModbusError
from loadpilot.registers import powerbrain, table

_ROWS = powerbrain.EVSE


def _addr(key):
    return table.address(_ROWS, key)


A_ENERGY = _addr("energy_wh")
A_POWER = _addr("power_w")
A_CUR1 = _addr("current_l1_ma")
A_FAILSAFE = _addr("fail_safe_duration_s")
A_STATE = _addr("charge_pilot_state")
A_LIMIT = _addr("charging_cur_limit_ma")
A_ENABLE = _addr("charging_enable")
A_CHARGING = _addr("charging_current_ma")
A_HAS_METER = _addr("has_meter")
A_RELAY = _addr("relay_select")
A_FLAGS = _addr("s0_inputs")
FLAG_PHASE_SWITCH = 0x100  # 8113 bit 8: switching 1p/3p permitted while plugged in
CTRL_START = A_FAILSAFE
CTRL_COUNT = A_CHARGING - A_FAILSAFE + 1
METER_COUNT = A_CUR1 + 6 - A_ENERGY
LIMIT_MIN_MA, LIMIT_MAX_MA = table.limit(powerbrain.LIMITS, "charging_cur_limit_ma")

# 8092 CP state 0=A .. 3=D -> site status 1..4; E, F, DC sensor error and anything else: 5 (error)
_STATUS = (1, 2, 3, 4)


class PowerBrain(Wallbox):
    def __init__(self, dev, client):
        Wallbox.__init__(self, dev, client)
        self.has_meter = None  # unknown until the first contact
        self.cp_state = None
        self.limit_ma = 0
        self.enabled = None
        self.phases = dev.get("phases", 3)  # wired for; the 8087 read-back once the box can switch
        self.can_switch = False
        self.phases_written = None  # 8087 wish written since this contact (None = none yet)
        self.phase_write_ms = None  # last 8087 write: kept over a lost contact (the box keeps its relay)
        self.phase_writes = 0

    def lost(self):
        Wallbox.lost(self)
        self.has_meter = None
        self.phases_written = None

    async def poll(self, state, now_ms):
        c = self.client
        if self.phase_write_ms is not None and time.ticks_diff(now_ms, self.phase_write_ms) >= MIN_SWITCH_INTERVAL_MS:
            self.phase_write_ms = None  # interval over: forget it before ticks_diff wraps (after 6 days)
        if self.has_meter is None:
            try:  # on its own: a box without 8113 answers 02 and is driven without phase switching
                r = await c.read_holding(A_FLAGS, 1, unit=self.unit)
                self.can_switch = decode.u16(r, 0) & FLAG_PHASE_SWITCH != 0
            except ModbusError:
                self.can_switch = False
            r = await c.read_holding(A_HAS_METER, 1, unit=self.unit)
            self.has_meter = decode.u16(r, 0) != 0
        r = await c.read_holding(CTRL_START, CTRL_COUNT, unit=self.unit)
        self.fail_safe_s = decode.u32(r, 0)
        cp = decode.u16(r, A_STATE - CTRL_START)
        self.limit_ma = decode.u16(r, A_LIMIT - CTRL_START) * 100
        self.enabled = decode.u16(r, A_ENABLE - CTRL_START) != 0
        charging_ma = decode.u16(r, A_CHARGING - CTRL_START) * 100
        if self.can_switch:
            self.phases = 1 if decode.u16(r, A_RELAY - CTRL_START) == 1 else 3
        state.phases = self.phases if self.can_switch else None
        state.can_switch_phases = self.can_switch
        self.cp_state = cp
        status = _STATUS[cp] if cp < 4 else 5
        if self.has_meter:
            m = await c.read_holding(A_ENERGY, METER_COUNT, unit=self.unit)
            cur = [decode.i32(m, A_CUR1 - A_ENERGY + 2 * i) * 100 for i in range(3)]
            state.reading.update(current_ma=wire_currents(self.wiring, cur),
                                 power_w=decode.i32(m, A_POWER - A_ENERGY),
                                 import_wh=decode.u64(m, 0), now_ms=now_ms)
        else:
            # no meter: the signalled current on the phases the box is wired for, while it charges
            on = charging_ma if status in (3, 4) else 0
            cur = [on if i < self.phases else 0 for i in range(3)]
            state.reading.update(current_ma=wire_currents(self.wiring, cur), now_ms=now_ms)
        state.set_status(status)

    async def apply(self, sp, now_ms):
        if sp is None:
            return False
        enable, current_ma, phases = sp
        wrote = await self.apply_phases(phases, now_ms)
        if enable is None:  # a phase wish only (MQTT ctl phs): current and enable stay as they are
            return wrote
        ma = min(max(current_ma, LIMIT_MIN_MA), LIMIT_MAX_MA)
        wire = (ma // 100, 1 if enable else 0)
        if not self.due(wire, now_ms):
            return wrote
        await self.client.write_multiple(A_LIMIT, [wire[0], wire[1]], unit=self.unit)
        self.done(wire, now_ms)
        return True

    async def apply_phases(self, phases, now_ms):
        """Write the wish (1 or 3; anything else = none) to 8087 when it differs from the last one written on
        this contact (or, before any, from the box's own) and the last switch is MIN_SWITCH_INTERVAL_MS old."""
        if not self.can_switch or (phases != 1 and phases != 3):
            return False
        if phases == (self.phases if self.phases_written is None else self.phases_written):
            return False
        if self.phase_write_ms is not None and \
                time.ticks_diff(now_ms, self.phase_write_ms) < MIN_SWITCH_INTERVAL_MS:
            return False  # anti-chatter: the wish waits, as on the local charge point
        try:
            await self.client.write_single(A_RELAY, 1 if phases == 1 else 0, unit=self.unit)
        except ModbusError:
            self.can_switch = False  # the box refused 8087: no more tries on this contact
            return False
        self.phases_written = phases
        self.phase_write_ms = now_ms
        self.phase_writes += 1
        return True

    def info(self):
        d = Wallbox.info(self)
        d.update({"has_meter": self.has_meter, "cp_state": self.cp_state, "limit_ma": self.limit_ma,
                  "charging_enabled": self.enabled, "phases": self.phases, "can_switch_phases": self.can_switch,
                  "phase_writes": self.phase_writes})
        return d
