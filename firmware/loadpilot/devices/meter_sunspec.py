# meter_sunspec: any SunSpec meter or inverter. On each new contact it finds "SunS" (at 40000, 0 or 50000)
# and walks the model chain to the first meter (201-204 integer + scale factors, 211-214 float32) or inverter
# (101-103 integer + scale factors, 111-113 float32) model; each poll then reads that model's points.
# Layouts are data (offsets from the model's ID register, as in the SunSpec model definitions); 201-204 share
# one layout, as do 211-214, 101-103 and 111-113.
# Inverters report production: power W and currents as the inverter gives them, its lifetime energy as import.
from loadpilot.devices import decode
from loadpilot.devices.driver import Driver, wire_currents
from loadpilot.modbus.errors import ModbusError

SUNS = (0x5375, 0x6E53)
BASES = (40000, 0, 50000)
MAX_MODELS = 40

# i / v / wph: per-phase offsets; *_sf: scale factor offsets; kind: "int" or "float"
INT_METER = {"kind": "int", "i": (3, 4, 5), "i_sf": 6, "v": (8, 9, 10), "v_sf": 15, "w": 18,
             "wph": (19, 20, 21), "w_sf": 22, "exp": 38, "imp": 46, "e_sf": 54, "signed": True}
FLOAT_METER = {"kind": "float", "i": (4, 6, 8), "v": (12, 14, 16), "w": 28, "wph": (30, 32, 34), "exp": 60,
               "imp": 68}
INT_INVERTER = {"kind": "int", "i": (3, 4, 5), "i_sf": 6, "v": (10, 11, 12), "v_sf": 13, "w": 14, "w_sf": 15,
                "imp": 24, "e_sf": 26, "signed": False}
FLOAT_INVERTER = {"kind": "float", "i": (4, 6, 8), "v": (16, 18, 20), "w": 22, "imp": 32}

LAYOUTS = {}
for _m in (201, 202, 203, 204):
    LAYOUTS[_m] = INT_METER
for _m in (211, 212, 213, 214):
    LAYOUTS[_m] = FLOAT_METER
for _m in (101, 102, 103):
    LAYOUTS[_m] = INT_INVERTER
for _m in (111, 112, 113):
    LAYOUTS[_m] = FLOAT_INVERTER


def _span(layout):
    """Registers to read from the model's first point (ID + 2) to cover every offset used."""
    top = 0
    for k, v in layout.items():
        if k in ("kind", "signed"):
            continue
        for off in (v if isinstance(v, tuple) else (v,)):
            top = max(top, off + (2 if layout["kind"] == "float" or k in ("imp", "exp") else 1))
    return top - 2


def _sf_scale(v, sf, mul):
    if sf >= 0:
        return v * mul * 10 ** sf
    d = 10 ** (-sf)
    v *= mul
    return v // d if v >= 0 else -((-v) // d)


class SunSpecMeter(Driver):
    def __init__(self, dev, client):
        Driver.__init__(self, dev, client)
        self.model = None      # model ID found
        self.model_addr = None
        self.layout = None
        self.raw = None

    def lost(self):
        self.model = None

    async def scan(self):
        c = self.client
        for base in BASES:
            try:
                r = await c.read_holding(base, 2, unit=self.unit)
            except ModbusError:  # an exception answer at one base is normal: try the next (a timeout is not)
                continue
            if (decode.u16(r, 0), decode.u16(r, 1)) == SUNS:
                break
        else:
            raise ValueError("no SunSpec marker at %s" % ", ".join(str(b) for b in BASES))
        addr = base + 2
        for _ in range(MAX_MODELS):
            r = await c.read_holding(addr, 2, unit=self.unit)
            mid, length = decode.u16(r, 0), decode.u16(r, 1)
            if mid == 0xFFFF:
                break
            lay = LAYOUTS.get(mid)
            if lay is not None:
                self.model, self.model_addr, self.layout = mid, addr, lay
                self.raw = bytearray(2 * _span(lay))
                return
            addr += 2 + length
        raise ValueError("no SunSpec meter or inverter model")

    async def poll(self, state, now_ms):
        if self.model is None:
            await self.scan()
        r = await self.client.read_holding(self.model_addr + 2, len(self.raw) // 2, unit=self.unit)
        self.raw[:] = r
        self.store(state, self.decode(), now_ms)

    def _get(self, off, kind, mul, sf_off=None, signed=True):
        i = off - 2
        if self.layout["kind"] == "float":
            try:
                return decode.scaled("f32", self.raw, i, mul, 1)
            except ValueError:
                return None  # NaN: not implemented (e.g. phases B and C of a single-phase model)
        if kind == "acc32":
            v = decode.u32(self.raw, i)
        else:
            v = decode.i16(self.raw, i) if signed else decode.u16(self.raw, i)
            if v == (-0x8000 if signed else 0xFFFF):
                return None  # not implemented
        sf = decode.i16(self.raw, sf_off - 2)
        if sf == -0x8000:
            return None
        return _sf_scale(v, sf, mul)

    def decode(self):
        """-> {quantity: int or None} in mA, V, W, Wh."""
        lay = self.layout
        s = lay.get("signed", True)
        out = {}
        for n, off in enumerate(lay["i"]):
            out["i%d" % (n + 1)] = self._get(off, "n", 1000, lay.get("i_sf"), s)
        for n, off in enumerate(lay["v"]):
            out["v%d" % (n + 1)] = self._get(off, "n", 1, lay.get("v_sf"), s)
        out["p"] = self._get(lay["w"], "n", 1, lay.get("w_sf"), True)
        if "wph" in lay:
            for n, off in enumerate(lay["wph"]):
                out["p%d" % (n + 1)] = self._get(off, "n", 1, lay.get("w_sf"), True)
        out["imp"] = self._get(lay["imp"], "acc32", 1, lay.get("e_sf"))
        if "exp" in lay:
            out["exp"] = self._get(lay["exp"], "acc32", 1, lay.get("e_sf"))
        return out

    def store(self, state, v, now_ms):
        cur = [v.get("i1") or 0, v.get("i2") or 0, v.get("i3") or 0]
        pw = None
        if v.get("p1") is not None:
            pw = [v["p1"], v.get("p2") or 0, v.get("p3") or 0]
            for i in range(3):
                if pw[i] < 0 and cur[i] > 0:
                    cur[i] = -cur[i]  # export: negative current, as Site readings want
            pw = wire_currents(self.wiring, pw)
        volts = None
        if v.get("v1"):
            volts = wire_currents(self.wiring, [v["v1"], v.get("v2") or 0, v.get("v3") or 0])
        state.reading.update(current_ma=wire_currents(self.wiring, cur), voltage_v=volts, power_w=v.get("p"),
                             import_wh=v.get("imp"), export_wh=v.get("exp"), phase_w=pw, now_ms=now_ms)

    def info(self):
        return {"sunspec_model": self.model}
