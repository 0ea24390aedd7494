# SunSpec server images (seeds/sunspec-modbus-server.md, SPEC-NOTES "SunSpec server").
#
# Two compact RegisterImages, built once from the configuration and rebuilt when devices change:
#   ChargingManagerMap  under the Modbus ID:  SunS, model 1, 7 x model 213, 60000, 60001, 60002, end marker
#   DeviceMap           under Modbus ID + 1:  113(+2) per wallbox, 213(+2) per meter, 124(+1) after storage
# Values are filled from integer site readings (mA, V, W, Wh); floats exist only while encoding. Each float32
# is written with one struct.pack_into and no await in between, so a reader on the cooperative loop never sees
# half an old and half a new value.
import struct
from micropython import const

from loadpilot.modbus.image import RegisterImage

BASE = const(40000)
NAN_BITS = const(0x7FC00000)   # unimplemented float32
U16_NA = const(0xFFFF)         # unimplemented uint16 / enum16
I16_NA = const(0x8000)         # unimplemented int16 / sunssf / pad

# model lengths (registers after ID and L)
L_COMMON = const(66)
L_METER = const(124)       # model 213 under the ID
L_METER_DEV = const(126)   # model 213 + role + device id under ID+1
L_EVSE_DEV = const(62)     # model 113 + status + device number
L_STORAGE_DEV = const(25)  # model 124 + device id
L_PARAMS = const(16)
L_FLAGS = const(32)
VAR_REGS = const(22)       # 20-register name + float32 value (SPEC-NOTES: the prose wins over the offsets)
N_FLAGS = const(32)

# the seven model 213 instances under the ID, in order (SPEC-NOTES)
TOTALS = ("grid", "consumers", "generators", "pv_surplus", "evse_used", "evse_available", "fault")

# model 60000 points: (offset, config key, kind); kind "ma" = current >= 0, "bool" = 0/1, "pct" = 0..100
PARAMS_60000 = (
    (2, "max_total_current", "ma"),
    (4, "reserve_current", "ma"),
    (6, "overdraft_cur", "ma"),
    (8, "max_total_evse_current", "ma"),
    (10, "max_imbalance_current", "ma"),
    (12, "lb_enabled", "bool"),
    (14, "imbalance_add_home", "bool"),
    (16, "max_total_cur_prc", "pct"),  # volatile: grid-operator control, may change every second
)

# meter roles (SPEC-NOTES): 5 and 6 are storage and add model 124
ROLE_STORAGE_HOME = const(5)
ROLE_STORAGE_ALL = const(6)

# model 213 float offsets we fill (const: inlined, no module global each)
_A = const(2)
_APH = const(4)
_PHV = const(10)
_PHVPH = const(12)
_HZ = const(26)
_W = const(28)
_WPH = const(30)
_VA = const(36)
_VAR = const(44)
_EXP_WH = const(60)
_IMP_WH = const(68)
_EVT = const(124)
# model 113 float offsets we fill
_E_A = const(2)
_E_APH = const(4)
_E_PHVPH = const(16)
_E_W = const(22)
_E_HZ = const(24)
_E_VA = const(26)
_E_WH = const(32)
_E_ST = const(48)


def _f(x):
    return float(x)


def _f32(img, addr, v):
    if v is None:
        img.set_u32(addr, NAN_BITS)
    else:
        img.set_float32(addr, v)


def _header(img, addr, model_id, length):
    img.set_u16(addr, model_id)
    img.set_u16(addr + 1, length)


def _nan_fill(img, addr, n_floats):
    for i in range(n_floats):
        img.set_u32(addr + 2 * i, NAN_BITS)


def _meter_floats(img, a, r):
    """Fill a model 213 at address a from reading r (None = unimplemented)."""
    if r is None:
        _nan_fill(img, a + 2, 61)
        img.set_u32(a + _EVT, 0)
        return
    cur = r.current_ma
    _f32(img, a + _A, (cur[0] + cur[1] + cur[2]) / 1000)
    for i in range(3):
        _f32(img, a + _APH + 2 * i, cur[i] / 1000)
    v = r.voltage_v
    _f32(img, a + _PHV, (v[0] + v[1] + v[2]) / 3)
    for i in range(3):
        _f32(img, a + _PHVPH + 2 * i, _f(v[i]))
    _f32(img, a + _HZ, 50.0)
    _f32(img, a + _W, _f(r.power_w))
    for i in range(3):
        _f32(img, a + _WPH + 2 * i, _f(r.phase_power_w(i)))
    _f32(img, a + _VA, _f(r.power_va))
    _f32(img, a + _EXP_WH, _f(r.export_wh))
    _f32(img, a + _IMP_WH, _f(r.import_wh))


def _evse_floats(img, a, r):
    cur = r.current_ma
    _f32(img, a + _E_A, (cur[0] + cur[1] + cur[2]) / 1000)
    for i in range(3):
        _f32(img, a + _E_APH + 2 * i, cur[i] / 1000)
        _f32(img, a + _E_PHVPH + 2 * i, _f(r.voltage_v[i]))
    _f32(img, a + _E_W, _f(r.power_w))
    _f32(img, a + _E_HZ, 50.0)
    _f32(img, a + _E_VA, _f(r.power_va))
    _f32(img, a + _E_WH, _f(r.import_wh))


class ChargingManagerMap:
    """The map under the Modbus ID. Addresses follow SPEC-NOTES exactly for any number of variables."""

    def __init__(self, ident, modbus_id, var_names):
        self.var_names = list(var_names)
        self.addr_common = BASE + 2
        self.addr_totals = [self.addr_common + 2 + L_COMMON + i * (2 + L_METER) for i in range(len(TOTALS))]
        self.addr_params = self.addr_totals[-1] + 2 + L_METER
        self.addr_flags = self.addr_params + 2 + L_PARAMS
        self.addr_vars = self.addr_flags + 2 + L_FLAGS
        self.addr_end = self.addr_vars + 2 + VAR_REGS * len(self.var_names)
        img = self.image = RegisterImage(BASE, self.addr_end + 2 - BASE)
        img.set_string(BASE, 2, "SunS")
        c = self.addr_common
        _header(img, c, 1, L_COMMON)
        img.set_string(c + 2, 16, ident.get("manufacturer", "LoadPilot"))
        img.set_string(c + 18, 16, ident.get("model", "LoadPilot Charging Manager"))
        img.set_string(c + 34, 8, ident.get("options", ""))
        img.set_string(c + 42, 8, ident.get("version", ""))
        img.set_string(c + 50, 16, ident.get("serial", ""))
        img.set_u16(c + 66, modbus_id)
        img.set_u16(c + 67, I16_NA)
        for a in self.addr_totals:
            _header(img, a, 213, L_METER)
            _meter_floats(img, a, None)
        _header(img, self.addr_params, 60000, L_PARAMS)
        _nan_fill(img, self.addr_params + 2, 8)
        _header(img, self.addr_flags, 60001, L_FLAGS)
        _header(img, self.addr_vars, 60002, VAR_REGS * len(self.var_names))
        for i, name in enumerate(self.var_names):
            a = self.addr_vars + 2 + i * VAR_REGS
            img.set_string(a, 20, name)
            _f32(img, a + 20, None)
        img.set_u16(self.addr_end, 0xFFFF)
        img.set_u16(self.addr_end + 1, 0)

    # --- reporting: called by the reporter once per cycle, never by the read path
    def set_total(self, index, reading):
        _meter_floats(self.image, self.addr_totals[index], reading)

    def set_params(self, params):
        """params: dict with the 60000 keys; missing keys stay as they are."""
        for off, key, kind in PARAMS_60000:
            if key in params:
                v = params[key]
                _f32(self.image, self.addr_params + off, None if v is None else (1.0 if v is True else _f(v)))

    def set_flag(self, index, value):
        self.image.set_i16(self.addr_flags + 2 + index, 1 if value else 0)

    def set_var(self, index, value):
        _f32(self.image, self.addr_vars + 2 + index * VAR_REGS + 20, value)

    # --- writes: decode a Modbus write into commands without changing anything
    def decode_write(self, addr, values):
        """values: list of uint16 register values written from addr on. Returns (exception_code, commands);
        commands are ("param", key, int_value), ("flag", index, 0|1) or ("var", name, float). All or nothing:
        any bad register makes the whole write fail with its exception code."""
        end = addr + len(values)
        if addr < self.addr_params + 2 or end > self.addr_end:
            return 2, None
        cmds = []
        a = addr
        while a < end:
            if self.addr_params + 2 <= a < self.addr_flags:
                off = a - self.addr_params
                if off % 2 or a + 1 >= end:
                    return 3, None  # half of a float pair
                x = _decode_f32(values[a - addr], values[a - addr + 1])
                key, kind = _param_at(off)
                code, v = _check_param(kind, x)
                if code:
                    return code, None
                cmds.append(("param", key, v))
                a += 2
            elif self.addr_flags <= a < self.addr_flags + 2:
                return 2, None  # model header
            elif self.addr_flags + 2 <= a < self.addr_vars:
                v = values[a - addr]
                if v not in (0, 1):
                    return 3, None
                cmds.append(("flag", a - self.addr_flags - 2, v))
                a += 1
            elif self.addr_vars + 2 <= a < self.addr_end:
                off = (a - self.addr_vars - 2) % VAR_REGS
                idx = (a - self.addr_vars - 2) // VAR_REGS
                if off < 20:
                    return 2, None  # variable names are read-only
                if off != 20 or a + 1 >= end:
                    return 3, None
                x = _decode_f32(values[a - addr], values[a - addr + 1])
                if x != x or x in (float("inf"), float("-inf")):
                    return 3, None
                cmds.append(("var", self.var_names[idx], x))
                a += 2
            else:
                return 2, None
        return 0, cmds


def _param_at(off):
    for o, key, kind in PARAMS_60000:
        if o == off:
            return key, kind
    raise ValueError(off)


def _decode_f32(hi, lo):
    return struct.unpack(">f", struct.pack(">HH", hi, lo))[0]


def _check_param(kind, x):
    if x != x or x in (float("inf"), float("-inf")):
        return 3, None
    if kind == "bool":
        if x not in (0.0, 1.0):
            return 3, None
        return 0, x == 1.0
    if kind == "pct":
        if not 0.0 <= x <= 100.0:
            return 3, None
        return 0, int(x + 0.5)
    if x < 0.0 or x > 1e9:  # upper ranges are the config schema's job; this only keeps int() sane
        return 3, None
    return 0, int(x + 0.5)


class DeviceMap:
    """The map under Modbus ID + 1: each device with "publish via Modbus", in configuration order."""

    def __init__(self, devices):
        """devices: list of dicts with dev_id ("E1"/"M2"), and for meters role (0..6)."""
        self.entries = []  # (dev_id, kind, address)
        a = BASE + 2
        for d in devices:
            dev_id = d["dev_id"]
            if dev_id[0] == "E":
                self.entries.append((dev_id, "evse", a))
                a += 2 + L_EVSE_DEV
            else:
                self.entries.append((dev_id, "meter", a))
                a += 2 + L_METER_DEV
                if d.get("role") in (ROLE_STORAGE_HOME, ROLE_STORAGE_ALL):
                    self.entries.append((dev_id, "storage", a))
                    a += 2 + L_STORAGE_DEV
        self.addr_end = a
        img = self.image = RegisterImage(BASE, a + 2 - BASE)
        img.set_string(BASE, 2, "SunS")
        roles = {d["dev_id"]: d.get("role", 0) for d in devices}
        for dev_id, kind, a in self.entries:
            number = int(dev_id[1:])
            if kind == "evse":
                _header(img, a, 113, L_EVSE_DEV)
                _nan_fill(img, a + 2, 23)
                img.set_u16(a + _E_ST, U16_NA)
                img.set_u16(a + _E_ST + 1, U16_NA)
                for i in range(6):
                    img.set_u32(a + 50 + 2 * i, 0)
                img.set_u16(a + 62, 5)  # error/offline until the first reading arrives
                img.set_u16(a + 63, number)
            elif kind == "meter":
                _header(img, a, 213, L_METER_DEV)
                _meter_floats(img, a, None)
                img.set_i16(a + 126, roles[dev_id])
                img.set_i16(a + 127, -number)
            else:
                _header(img, a, 124, L_STORAGE_DEV)
                for off in range(2, 18):
                    img.set_u16(a + off, U16_NA)
                for off in range(18, 26):
                    img.set_u16(a + off, I16_NA)
                img.set_i16(a + 26, -number)
        img.set_u16(self.addr_end, 0xFFFF)
        img.set_u16(self.addr_end + 1, 0)

    def find(self, dev_id, kind):
        for d, k, a in self.entries:
            if d == dev_id and k == kind:
                return a
        return None

    def set_evse(self, dev_id, reading, status):
        """status: 1 waiting, 2 plugged in, 3 charging, 4 charging with ventilation, 5 error/offline."""
        a = self.find(dev_id, "evse")
        if a is None:
            return
        if reading is not None:
            _evse_floats(self.image, a, reading)
        self.image.set_u16(a + 62, status)

    def set_meter(self, dev_id, reading):
        a = self.find(dev_id, "meter")
        if a is not None:
            _meter_floats(self.image, a, reading)

    def set_storage(self, dev_id, max_power_w, charge_limit_pct, discharge_limit_pct, soc_pct):
        """Integers; None = unimplemented. Scale factors are 0: values are whole W and %."""
        a = self.find(dev_id, "storage")
        if a is None:
            return
        img = self.image
        for off, v in ((2, max_power_w), (3, charge_limit_pct), (4, discharge_limit_pct), (8, soc_pct)):
            img.set_u16(a + off, U16_NA if v is None else v)
        for off in (18, 19, 22):
            img.set_i16(a + off, 0)
