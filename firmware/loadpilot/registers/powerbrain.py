# The Power-Brain-compatible slave map, registers 8000-8121 (reference/modbus-registers.md, SPEC-NOTES).
# Unit 1 is the EVSE (with its attached meter), units 2 and 3 the S0 meters; over TCP, ports 4701-4703.
#
# The map is a data table: (address, registers, access, kind, key). `key` names the value in the source
# dict the reporter passes to refresh() and in the commands a write produces. Kinds: u16, i16, u32, i32, u64
# (high word first), str (2 chars per register). Scaled currents (0.1 A on the wire) are converted here:
# keys ending in _ma are mA inside and 0.1 A on the wire.
#
# Decisions where the reference is loose (SPEC-NOTES and the reference's own read=all example):
# - 8000 vendor_id is 2 registers: 0xCF05, 0x0000. 8004 product_version is 1 register, major<<8 | minor,
#   and 8005 product_build the next one (the table says "2 r" for 8004, but 8005 follows it).
# - Write-only registers (reset_pulses, reset_energy) read as 0.
from micropython import const

BASE = const(8000)
COUNT = const(122)  # 8000..8121: count_restart (8120, 2 registers) is the last

R = const(1)
W = const(2)
RW = const(3)

COMMON = (
    (8000, 2, R, "u32", "vendor_id"),
    (8002, 1, R, "u16", "product_id"),
    (8003, 1, R, "u16", "device_id"),
    (8004, 1, R, "u16", "product_version"),
    (8005, 1, R, "u16", "product_build"),
    (8006, 1, R, "u16", "mapping_version"),
    (8007, 1, R, "u16", "padding_1"),
    (8008, 8, R, "str", "serial_no"),
    (8016, 16, R, "str", "name"),
    (8040, 1, RW, "u16", "slave_id"),
    (8120, 2, RW, "u32", "count_restart"),
)

METER = (
    (8041, 1, R, "u16", "input"),
    (8042, 2, RW, "u32", "pulses_per_kwh"),
    (8044, 1, RW, "u16", "phases"),
    (8045, 1, RW, "u16", "voltage_l1"),
    (8046, 1, RW, "u16", "voltage_l2"),
    (8047, 1, RW, "u16", "voltage_l3"),
    (8050, 4, RW, "u64", "pulses"),
    (8054, 2, R, "u32", "time_per_pulse_ms"),
    (8056, 1, R, "u16", "level"),
    (8057, 1, R, "u16", "meter_flags"),
    (8058, 4, RW, "u64", "energy_wh"),
    (8062, 2, R, "i32", "power_w"),
    (8064, 2, R, "i32", "current_l1_ma"),
    (8066, 2, R, "i32", "current_l2_ma"),
    (8068, 2, R, "i32", "current_l3_ma"),
    (8070, 1, W, "u16", "reset_pulses"),
    (8071, 1, W, "u16", "reset_energy"),
)

EVSE = (
    (8057, 1, R, "u16", "meter_flags"),
    (8058, 4, R, "u64", "energy_wh"),
    (8062, 2, R, "i32", "power_w"),
    (8064, 2, R, "i32", "current_l1_ma"),
    (8066, 2, R, "i32", "current_l2_ma"),
    (8068, 2, R, "i32", "current_l3_ma"),
    (8080, 1, RW, "u16", "def_fixed_current_ma"),
    (8081, 1, RW, "u16", "def_charging_cur_limit_ma"),
    (8082, 1, RW, "u16", "def_charging_enable"),
    (8083, 2, RW, "u32", "fail_safe_duration_s"),
    (8085, 1, RW, "u16", "fail_safe_current_ma"),
    (8086, 1, RW, "u16", "disconnect_cp_s"),
    (8087, 1, RW, "u16", "relay_select"),
    (8088, 1, RW, "u16", "relay2"),
    (8090, 1, R, "u16", "cable_current_ma"),
    (8091, 1, RW, "u16", "fixed_current_ma"),
    (8092, 1, R, "u16", "charge_pilot_state"),
    (8093, 1, RW, "u16", "charging_cur_limit_ma"),
    (8094, 1, RW, "u16", "charging_enable"),
    (8095, 1, R, "u16", "charging_current_ma"),
    (8096, 15, R, "str", "last_rfid"),
    (8111, 1, R, "u16", "detected_rfids"),
    (8112, 1, R, "u16", "has_meter"),
    (8113, 1, R, "u16", "s0_inputs"),
)

# Volatile per SPEC-NOTES; every other writable register is persisted through the config store.
VOLATILE = ("charging_cur_limit_ma", "fixed_current_ma", "charging_enable", "disconnect_cp_s", "relay_select",
            "relay2")

# what a written value may be (inclusive, in the units inside: mA, s, counts); others are refused with 03
LIMITS = {
    "slave_id": (1, 247),
    "count_restart": (0, 0xFFFFFFFF),
    "pulses_per_kwh": (1, 100000),
    "phases": (1, 7),
    "voltage_l1": (100, 300), "voltage_l2": (100, 300), "voltage_l3": (100, 300),
    "pulses": (0, 0xFFFFFFFFFFFF), "energy_wh": (0, 0xFFFFFFFFFFFF),
    "reset_pulses": (1, 1), "reset_energy": (1, 1),
    "def_fixed_current_ma": (0, 63000),
    "def_charging_cur_limit_ma": (6000, 63000),
    "def_charging_enable": (0, 1),
    "fail_safe_duration_s": (0, 86400),
    "fail_safe_current_ma": (0, 63000),  # 0 = stop charging when the master is silent
    "disconnect_cp_s": (0, 3600),
    "relay_select": (0, 1),
    "relay2": (0, 1),
    "fixed_current_ma": (0, 63000),      # 0 = no override of the cable current
    "charging_cur_limit_ma": (6000, 63000),
    "charging_enable": (0, 1),
}


def table(kind):
    return COMMON + (EVSE if kind == "evse" else METER)


def _scaled(key):
    return key.endswith("_ma")


def encode(img, table_rows, values):
    """Write the values present in the dict into the image (a RegisterImage). Called by the reporter."""
    for addr, n, access, kind, key in table_rows:
        if key not in values or access == W:
            continue
        v = values[key]
        if v is None:
            continue
        if _scaled(key):
            v = v // 100 if v >= 0 else -((-v) // 100)
        if kind == "str":
            img.set_string(addr, n, v)
        elif kind == "u64":
            img.set_u32(addr, (v >> 32) & 0xFFFFFFFF)
            img.set_u32(addr + 2, v & 0xFFFFFFFF)
        elif kind in ("u32", "i32"):
            img.set_i32(addr, v) if kind == "i32" else img.set_u32(addr, v)
        elif kind == "i16":
            img.set_i16(addr, v)
        else:
            img.set_u16(addr, v)


def decode_write(table_rows, addr, values):
    """values: uint16 registers written from addr on. -> (exception_code, [(key, value), ...]).
    A write must cover whole values; a read-only or unknown register gives 02, a bad value 03, and then
    nothing is changed."""
    end = addr + len(values)
    out = []
    a = addr
    while a < end:
        row = None
        for r in table_rows:
            if r[0] <= a < r[0] + r[1]:
                row = r
                break
        if row is None or not row[2] & W:
            return 2, None
        raddr, n, access, kind, key = row
        if a != raddr or a + n > end:
            return 3, None  # part of a multi-register value
        regs = values[a - addr:a - addr + n]
        if kind == "str":
            return 2, None
        v = 0
        for r in regs:
            v = (v << 16) | r
        if kind == "i16" and v & 0x8000:
            v -= 0x10000
        if kind == "i32" and v & 0x80000000:
            v -= 0x100000000
        if _scaled(key):
            v *= 100
        lo, hi = LIMITS[key]
        if not lo <= v <= hi:
            return 3, None
        out.append((key, v))
        a += n
    return 0, out
