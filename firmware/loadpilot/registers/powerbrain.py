# The Power-Brain-compatible slave map, registers 8000-8121 (reference/modbus-registers.md, SPEC-NOTES).
# Unit 1 is the EVSE (with its attached meter), units 2 and 3 the S0 meters; over TCP, ports 4701-4703.
#
# The map is data (rows as in registers/table.py); currents are mA inside and 0.1 A on the wire.
#
# Decisions where the reference is loose (SPEC-NOTES and the reference's own read=all example):
# - 8000 vendor_id is 2 registers: 0xCF05, 0x0000. 8004 product_version is 1 register, major<<8 | minor,
#   and 8005 product_build the next one (the table says "2 r" for 8004, but 8005 follows it).
# - Write-only registers (reset_pulses, reset_energy) read as 0.
from micropython import const

from loadpilot.registers import table as _table

# registers/table.py's access codes and kinds, as consts here: an imported name inside the rows would make the
# compiler build every row at import; with consts the rows are constant tuples, which stay in flash when frozen
_R = const(1)
_W = const(2)
_RW = const(3)
_U16 = const(0)  # the kinds, as in registers/table.py (a unit test keeps them equal)
_I16 = const(1)
_U32 = const(2)
_I32 = const(3)
_U64 = const(4)
_STR = const(5)

BASE = const(8000)
COUNT = const(122)  # 8000..8121: count_restart (8120, 2 registers) is the last

COMMON = (
    (8000, 2, _R, _U32, "vendor_id", 1),
    (8002, 1, _R, _U16, "product_id", 1),
    (8003, 1, _R, _U16, "device_id", 1),
    (8004, 1, _R, _U16, "product_version", 1),
    (8005, 1, _R, _U16, "product_build", 1),
    (8006, 1, _R, _U16, "mapping_version", 1),
    (8007, 1, _R, _U16, "padding_1", 1),
    (8008, 8, _R, _STR, "serial_no", 1),
    (8016, 16, _R, _STR, "name", 1),
    (8040, 1, _RW, _U16, "slave_id", 1),
    (8120, 2, _RW, _U32, "count_restart", 1),
)

METER = (
    (8041, 1, _R, _U16, "input", 1),
    (8042, 2, _RW, _U32, "pulses_per_kwh", 1),
    (8044, 1, _RW, _U16, "phases", 1),
    (8045, 1, _RW, _U16, "voltage_l1", 1),
    (8046, 1, _RW, _U16, "voltage_l2", 1),
    (8047, 1, _RW, _U16, "voltage_l3", 1),
    (8050, 4, _RW, _U64, "pulses", 1),
    (8054, 2, _R, _U32, "time_per_pulse_ms", 1),
    (8056, 1, _R, _U16, "level", 1),
    (8057, 1, _R, _U16, "meter_flags", 1),
    (8058, 4, _RW, _U64, "energy_wh", 1),
    (8062, 2, _R, _I32, "power_w", 1),
    (8064, 2, _R, _I32, "current_l1_ma", 100),
    (8066, 2, _R, _I32, "current_l2_ma", 100),
    (8068, 2, _R, _I32, "current_l3_ma", 100),
    (8070, 1, _W, _U16, "reset_pulses", 1),
    (8071, 1, _W, _U16, "reset_energy", 1),
)

EVSE = (
    (8057, 1, _R, _U16, "meter_flags", 1),
    (8058, 4, _R, _U64, "energy_wh", 1),
    (8062, 2, _R, _I32, "power_w", 1),
    (8064, 2, _R, _I32, "current_l1_ma", 100),
    (8066, 2, _R, _I32, "current_l2_ma", 100),
    (8068, 2, _R, _I32, "current_l3_ma", 100),
    (8080, 1, _RW, _U16, "def_fixed_current_ma", 100),
    (8081, 1, _RW, _U16, "def_charging_cur_limit_ma", 100),
    (8082, 1, _RW, _U16, "def_charging_enable", 1),
    (8083, 2, _RW, _U32, "fail_safe_duration_s", 1),
    (8085, 1, _RW, _U16, "fail_safe_current_ma", 100),
    (8086, 1, _RW, _U16, "disconnect_cp_s", 1),
    (8087, 1, _RW, _U16, "relay_select", 1),
    (8088, 1, _RW, _U16, "relay2", 1),
    (8090, 1, _R, _U16, "cable_current_ma", 100),
    (8091, 1, _RW, _U16, "fixed_current_ma", 100),
    (8092, 1, _R, _U16, "charge_pilot_state", 1),
    (8093, 1, _RW, _U16, "charging_cur_limit_ma", 100),
    (8094, 1, _RW, _U16, "charging_enable", 1),
    (8095, 1, _R, _U16, "charging_current_ma", 100),
    (8096, 15, _R, _STR, "last_rfid", 1),
    (8111, 1, _R, _U16, "detected_rfids", 1),
    (8112, 1, _R, _U16, "has_meter", 1),
    (8113, 1, _R, _U16, "s0_inputs", 1),
)

# Volatile per SPEC-NOTES; every other writable register is persisted through the config store.
VOLATILE = ("charging_cur_limit_ma", "fixed_current_ma", "charging_enable", "disconnect_cp_s", "relay_select",
            "relay2")

# what a written value may be (inclusive, in the units inside: mA, s, counts); others are refused with 03
LIMITS = (
    ("slave_id", 1, 247),
    ("count_restart", 0, 0xFFFFFFFF),
    ("pulses_per_kwh", 1, 100000),
    ("phases", 1, 7),
    ("voltage_l1", 100, 300), ("voltage_l2", 100, 300), ("voltage_l3", 100, 300),
    ("pulses", 0, 0xFFFFFFFFFFFF), ("energy_wh", 0, 0xFFFFFFFFFFFF),
    ("reset_pulses", 1, 1), ("reset_energy", 1, 1),
    ("def_fixed_current_ma", 0, 63000),
    ("def_charging_cur_limit_ma", 6000, 63000),
    ("def_charging_enable", 0, 1),
    ("fail_safe_duration_s", 0, 86400),
    ("fail_safe_current_ma", 0, 63000),  # 0 = stop charging when the master is silent
    ("disconnect_cp_s", 0, 3600),
    ("relay_select", 0, 1),
    ("relay2", 0, 1),
    ("fixed_current_ma", 0, 63000),      # 0 = no override of the cable current
    ("charging_cur_limit_ma", 6000, 63000),
    ("charging_enable", 0, 1),
)


def table(kind):
    """The rows of unit kind ("evse" or "meter") as one tuple (built per call: for writes and tests)."""
    return COMMON + (EVSE if kind == "evse" else METER)


def encode_map(img, kind, values):
    """encode() of unit kind's rows without joining them into a new tuple (the images refresh 5 times a second)."""
    _table.encode(img, COMMON, values)
    _table.encode(img, EVSE if kind == "evse" else METER, values)


def decode_write(rows, addr, values):
    return _table.decode_write(rows, LIMITS, addr, values)


encode = _table.encode
