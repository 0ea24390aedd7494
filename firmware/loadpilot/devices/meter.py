# A Modbus meter read through a data table (devices/meter_tables.py).
from loadpilot.devices import decode
from loadpilot.devices.driver import Driver, wire_currents


class TableMeter(Driver):
    def __init__(self, dev, client, table):
        Driver.__init__(self, dev, client)
        self.table = table
        self.raw = [bytearray(2 * n) for _, n in table["blocks"]]  # copies: a read's memoryview is short-lived
        # each field resolved once to (quantity, block index, register index, kind, mul, div)
        self.fields = []
        for q, addr, kind, mul, div in table["fields"]:
            for b, (start, n) in enumerate(table["blocks"]):
                if start <= addr < start + n:
                    self.fields.append((q, b, addr - start, kind, mul, div))
                    break
            else:
                raise ValueError("meter table: %s at 0x%04x is outside the read blocks" % (q, addr))

    async def poll(self, state, now_ms):
        read = self.client.read_input if self.table["fc"] == 4 else self.client.read_holding
        for b, (start, n) in enumerate(self.table["blocks"]):
            regs = await read(start, n, unit=self.unit)
            self.raw[b][:] = regs
        values = self.decode()
        self.store(state, values, now_ms)

    def decode(self):
        """-> {quantity: int} from the last raw blocks."""
        out = {}
        for q, b, i, kind, mul, div in self.fields:
            out[q] = decode.scaled(kind, self.raw[b], i, mul, div)
        return out

    def store(self, state, v, now_ms):
        cur = [v.get("i1", 0), v.get("i2", 0), v.get("i3", 0)]
        pw = None
        if "p1" in v:
            pw = [v["p1"], v["p2"], v["p3"]]
            if self.table.get("signed_currents_from_power"):
                for i in range(3):
                    if pw[i] < 0 and cur[i] > 0:
                        cur[i] = -cur[i]
            pw = wire_currents(self.wiring, pw)
        volts = None
        if "v1" in v:
            volts = wire_currents(self.wiring, [v["v1"], v["v2"], v["v3"]])
        state.reading.update(current_ma=wire_currents(self.wiring, cur), voltage_v=volts, power_w=v.get("p"),
                             import_wh=v.get("imp"), export_wh=v.get("exp"), phase_w=pw, now_ms=now_ms)
