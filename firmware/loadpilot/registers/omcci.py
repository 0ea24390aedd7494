# The OMCCI-style station map, holding registers 100-1119 (seed charging-station-web-interface-and-omcci-
# registers.md, "MODBUS REGISTER SET"; SPEC-NOTES). Served when this box is a slave; the Charging Manager's
# OMCCI driver reads the same rows from third-party stations. Rows as in registers/table.py.
#
# Decisions: unmapped registers inside 100..1119 read 0 (one compact image, as such stations do); currents
# written in A (131, 613-615, 1000) are mA inside; 141 always reads 0xEBEE; the charge point model is a
# 20-byte string over 142-151; the user ID reads as a 20-byte string (720-729) and is written as five
# 4-byte pieces (1110, 1112, .. 1118, as the seed lists them), one at a time or in one write. The operator
# DLM limits 613-615 are the setting dlm_operator_limit: the Charging Manager's per-phase cap for all
# wallboxes (0 = none). 100 is the firmware version as 4 characters, major.minor with two minor digits.
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

BASE = const(100)
COUNT = const(1020)  # 100..1119
DEVICE_ID = const(0xEBEE)

ROWS = (
    (100, 2, _R, _STR, "firmware_version", 1),
    (104, 1, _R, _U16, "ocpp_status", 1),
    (105, 2, _R, _U32, "error_codes_1", 1),
    (107, 2, _R, _U32, "error_codes_2", 1),
    (109, 2, _R, _U32, "error_codes_3", 1),
    (111, 2, _R, _U32, "error_codes_4", 1),
    (120, 2, _R, _STR, "protocol_version", 1),
    (122, 1, _R, _U16, "cp_state", 1),          # A=1 .. E=5
    (123, 1, _R, _U16, "cp_state_hex", 1),      # A=0x0A .. E=0x0E
    (124, 1, _RW, _U16, "available", 1),
    (131, 1, _RW, _U16, "safe_current_ma", 1000),
    (132, 1, _RW, _U16, "comm_timeout_s", 1),
    (133, 1, _R, _U16, "hw_current_limit_ma", 1000),
    (134, 1, _R, _U16, "operator_current_limit_ma", 1000),
    (135, 1, _R, _U16, "rcmb_mode", 1),
    (136, 1, _R, _U16, "rcmb_rms_int", 1),
    (137, 1, _R, _U16, "rcmb_rms_frac", 1),
    (138, 1, _R, _U16, "rcmb_dc_int", 1),
    (139, 1, _R, _U16, "rcmb_dc_frac", 1),
    (140, 1, _R, _U16, "relays_state", 1),
    (141, 1, _R, _U16, "device_id", 1),
    (142, 10, _R, _STR, "model", 1),
    (152, 1, _R, _U16, "plug_lock", 1),
    (200, 2, _R, _U32, "energy_l1_wh", 1),
    (202, 2, _R, _U32, "energy_l2_wh", 1),
    (204, 2, _R, _U32, "energy_l3_wh", 1),
    (206, 2, _R, _I32, "power_l1_w", 1),
    (208, 2, _R, _I32, "power_l2_w", 1),
    (210, 2, _R, _I32, "power_l3_w", 1),
    (212, 2, _R, _I32, "current_l1_ma", 1),
    (214, 2, _R, _I32, "current_l2_ma", 1),
    (216, 2, _R, _I32, "current_l3_ma", 1),
    (218, 2, _R, _U32, "energy_wh", 1),
    (220, 2, _R, _I32, "power_w", 1),
    (222, 2, _R, _U32, "voltage_l1_v", 1),
    (224, 2, _R, _U32, "voltage_l2_v", 1),
    (226, 2, _R, _U32, "voltage_l3_v", 1),
    (600, 1, _R, _U16, "dlm_mode", 1),
    (610, 1, _R, _U16, "dlm_limit_l1_ma", 1000),
    (611, 1, _R, _U16, "dlm_limit_l2_ma", 1000),
    (612, 1, _R, _U16, "dlm_limit_l3_ma", 1000),
    (613, 1, _RW, _U16, "dlm_operator_limit_l1_ma", 1000),
    (614, 1, _RW, _U16, "dlm_operator_limit_l2_ma", 1000),
    (615, 1, _RW, _U16, "dlm_operator_limit_l3_ma", 1000),
    (620, 1, _R, _U16, "dlm_external_meter", 1),
    (621, 1, _R, _U16, "dlm_slaves", 1),
    (630, 1, _R, _U16, "dlm_applied_l1_ma", 1000),
    (631, 1, _R, _U16, "dlm_applied_l2_ma", 1000),
    (632, 1, _R, _U16, "dlm_applied_l3_ma", 1000),
    (633, 1, _R, _U16, "dlm_available_l1_ma", 1000),
    (634, 1, _R, _U16, "dlm_available_l2_ma", 1000),
    (635, 1, _R, _U16, "dlm_available_l3_ma", 1000),
    (706, 1, _R, _U16, "signaled_current_ma", 1000),
    (707, 2, _R, _U32, "start_time_hhmmss", 1),
    (710, 2, _R, _U32, "end_time_hhmmss", 1),
    (712, 1, _R, _U16, "min_current_ma", 1000),
    (713, 2, _R, _U32, "ev_required_wh", 1),
    (715, 1, _R, _U16, "ev_max_current_ma", 1000),
    (716, 2, _R, _U32, "session_energy_wh", 1),
    (718, 2, _R, _U32, "session_duration_s", 1),
    (720, 10, _R, _STR, "user_id", 1),
    (740, 1, _R, _U16, "smart_vehicle", 1),
    (1000, 1, _RW, _U16, "hems_current_limit_ma", 1000),
    (1110, 2, _W, _STR, "write_user_id_0", 1),  # bytes 0..3; a write here starts a new user ID
    (1112, 2, _W, _STR, "write_user_id_1", 1),
    (1114, 2, _W, _STR, "write_user_id_2", 1),
    (1116, 2, _W, _STR, "write_user_id_3", 1),
    (1118, 2, _W, _STR, "write_user_id_4", 1),  # bytes 16..19
)
USER_ID_PIECES = ("write_user_id_0", "write_user_id_1", "write_user_id_2", "write_user_id_3", "write_user_id_4")

LIMITS = (
    ("available", 0, 1),
    ("safe_current_ma", 0, 80000),        # 0 = stop charging on communication loss
    ("comm_timeout_s", 0, 65535),         # 0 = no timeout
    ("hems_current_limit_ma", 0, 80000),  # 0 = no charging
    ("dlm_operator_limit_l1_ma", 0, 1000000),  # 0 = no operator limit on that phase
    ("dlm_operator_limit_l2_ma", 0, 1000000),
    ("dlm_operator_limit_l3_ma", 0, 1000000),
)

# never saved: the HEMS limit may change every few seconds (an energy manager steering the box)
VOLATILE = ("hems_current_limit_ma", "available", "write_user_id_0", "write_user_id_1", "write_user_id_2",
            "write_user_id_3", "write_user_id_4")  # written out: a + at import would build the tuple in RAM


def cp_state(letter):
    """Register 105's value for a CP state letter: A..D are 1..4, E, F and anything else 5."""
    i = "ABCD".find(letter) if letter else -1
    return i + 1 if i >= 0 else 5


def decode_write(addr, values):
    return _table.decode_write(ROWS, LIMITS, addr, values)


encode = _table.encode
