# A Modbus meter read through a data table: a built-in model (devices/meter_tables.py) or a user-defined
# definition compiled to one (devices/meter_definition.py).
import time

from loadpilot.devices import decode
from loadpilot.devices.driver import Driver, wire_currents

NOMINAL_V = 230  # a phase current from a phase power when the meter gives no voltage


def _place(items, blocks, what):
    """(name, addr, ...) items -> (name, block index, register index, ...): resolved once, not per poll."""
    out = []
    for item in items:
        for b, (start, n) in enumerate(blocks):
            if start <= item[1] < start + n:
                out.append((item[0], b, item[1] - start) + tuple(item[2:]))
                break
        else:
            raise ValueError("%s: %s at 0x%04x is outside the read blocks" % (what, item[0], item[1]))
    return out


def _text(regs, i, n):
    return "".join(chr(c) for c in regs[2 * i:2 * (i + n)] if 32 <= c < 127).strip()  # printable ASCII only


class TableMeter(Driver):
    def __init__(self, dev, client, table):
        Driver.__init__(self, dev, client)
        self.table = table
        self.raw = [bytearray(2 * n) for _, n in table["blocks"]]  # copies: a read's memoryview is short-lived
        self.fields = _place(table["fields"], table["blocks"], "meter table")
        self.extra = _place(table.get("extra", ()), table["blocks"], "meter table")
        self.once = _place(table.get("once", ()), table.get("once_blocks", ()), "meter table")
        self.fixed = table.get("fixed") or {}
        self.reserved = table.get("reserved", ())
        self.min_period_ms = table.get("min_period_ms", 0)
        self.vars = {}      # user-defined variables that are not a reading (shown in the devices view)
        self.details = dict(table.get("details") or {})
        self.identified = False
        self.read_ms = None

    async def poll(self, state, now_ms):
        if self.min_period_ms and self.read_ms is not None \
                and time.ticks_diff(now_ms, self.read_ms) < self.min_period_ms:
            return  # the definition asks for fewer reads (upd_delay): this visit reads nothing
        read = self.client.read_input if self.table["fc"] == 4 else self.client.read_holding
        if self.once and not self.identified:
            await self._read_once(read)
        for b, (start, n) in enumerate(self.table["blocks"]):
            regs = await read(start, n, unit=self.unit)
            self.raw[b][:] = regs
        values = self.decode()
        self.store(state, values, now_ms)
        self.read_ms = now_ms

    async def _read_once(self, read):
        raw = []
        for start, n in self.table["once_blocks"]:
            raw.append(bytes(await read(start, n, unit=self.unit)))
        for name, b, i, kind, n, mul, div in self.once:
            self.details[name] = _text(raw[b], i, n) if kind == "str" else \
                decode.scale(decode.raw(kind, raw[b], i), mul, div)
        self.identified = True

    def _value(self, b, i, kind, mul, div):
        v = decode.raw(kind, self.raw[b], i)
        if self.reserved and v in self.reserved:
            return 0
        return decode.scale(v, mul, div)

    def decode(self):
        """-> {quantity: int} from the last raw blocks (and the table's fixed values)."""
        out = {}
        for q in self.fixed:
            out[q] = self.fixed[q]
        for q, b, i, kind, mul, div in self.fields:
            out[q] = self._value(b, i, kind, mul, div)
        for name, b, i, kind, mul, div in self.extra:
            self.vars[name] = self._value(b, i, kind, mul, div)
        return out

    def lost(self):
        self.identified = False  # a replaced meter is read anew
        self.read_ms = None

    def info(self):
        out = {}
        if self.details:
            out["details"] = self.details
        if self.vars:
            out["vars"] = self.vars
        return out

    def store(self, state, v, now_ms):
        volts = None
        if "v1" in v:
            volts = [v["v1"], v.get("v2", 0), v.get("v3", 0)]
        pw = None
        if "p1" in v:
            pw = [v["p1"], v.get("p2", 0), v.get("p3", 0)]
        elif "p" in v and "i2" not in v and "i3" not in v:
            pw = [v["p"], 0, 0]  # a single-phase meter: its total power is L1's
        cur = None
        if "i1" in v:
            cur = [v["i1"], v.get("i2", 0), v.get("i3", 0)]
            if pw is not None and self.table.get("signed_currents_from_power"):
                for i in range(3):
                    if pw[i] < 0 < cur[i]:
                        cur[i] = -cur[i]
        elif "p1" in v:  # no current registers: I = P / U per phase, signed like the power
            cur = [0, 0, 0]
            for i in range(3):
                u = volts[i] if volts is not None and volts[i] > 0 else NOMINAL_V
                cur[i] = pw[i] * 1000 // u if pw[i] >= 0 else -((-pw[i]) * 1000 // u)
        state.reading.update(current_ma=wire_currents(self.wiring, cur) if cur is not None else None,
                             voltage_v=wire_currents(self.wiring, volts) if volts is not None else None,
                             power_w=v.get("p"), power_va=v.get("va"), import_wh=v.get("imp"),
                             export_wh=v.get("exp"), phase_w=wire_currents(self.wiring, pw) if pw is not None else None,
                             now_ms=now_ms)
        if "soc" in v and hasattr(state, "soc_pct"):
            state.soc_pct = v["soc"]
