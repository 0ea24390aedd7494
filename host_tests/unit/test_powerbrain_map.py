import pytest

from loadpilot.registers import powerbrain as pb


def test_tables_do_not_overlap_and_fit_the_image():
    for kind in ("evse", "meter"):
        used = set()
        for addr, n, _, _, key, _ in pb.table(kind):
            regs = set(range(addr, addr + n))
            assert not regs & used, key
            assert pb.BASE <= addr and addr + n <= pb.BASE + pb.COUNT
            used |= regs


@pytest.mark.parametrize("addr, values, expect", [
    (8093, [160], (0, [("charging_cur_limit_ma", 16000)])),       # evcc writes amps x 10
    (8094, [0], (0, [("charging_enable", 0)])),
    (8087, [1], (0, [("relay_select", 1)])),
    (8086, [5], (0, [("disconnect_cp_s", 5)])),
    (8083, [0, 600, 60], (0, [("fail_safe_duration_s", 600), ("fail_safe_current_ma", 6000)])),
    (8093, [50], (3, None)),    # below 6 A
    (8093, [700], (3, None)),   # above 63 A
    (8094, [2], (3, None)),
    (8084, [600], (3, None)),   # low half of fail_safe_duration
    (8092, [1], (2, None)),     # charge_pilot_state is read-only
    (8089, [1], (2, None)),     # not a register
    (8016, [0x4142], (2, None)),
])
def test_evse_writes(addr, values, expect):
    assert pb.decode_write(pb.table("evse"), addr, values) == expect


def test_meter_writes():
    t = pb.table("meter")
    assert pb.decode_write(t, 8042, [0, 1000]) == (0, [("pulses_per_kwh", 1000)])
    assert pb.decode_write(t, 8058, [0, 0, 0, 12345]) == (0, [("energy_wh", 12345)])
    assert pb.decode_write(t, 8071, [1]) == (0, [("reset_energy", 1)])
    assert pb.decode_write(t, 8062, [0, 5]) == (2, None)
    assert pb.decode_write(t, 8093, [160]) == (2, None)  # EVSE register on a meter unit


def test_the_maps_spell_the_access_codes_and_kinds_of_registers_table():
    # the maps repeat table.py's codes as local consts (so their rows are compile-time constants)
    from loadpilot.registers import omcci, table
    for mod in (pb, omcci):
        for name in ("R", "W", "RW", "U16", "I16", "U32", "I32", "U64", "STR"):
            assert getattr(mod, "_" + name) == getattr(table, name), (mod.__name__, name)
    kinds = (table.U16, table.I16, table.U32, table.I32, table.U64, table.STR)
    assert len(set(kinds)) == len(kinds)
    for row in pb.table("evse") + pb.table("meter") + omcci.ROWS:
        assert row[2] in (table.R, table.W, table.RW) and row[3] in kinds, row
