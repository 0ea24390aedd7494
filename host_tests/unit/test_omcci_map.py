import pytest

from loadpilot.registers import omcci


def test_rows_do_not_overlap_and_fit():
    used = set()
    for addr, n, _, _, key, _ in omcci.ROWS:
        regs = set(range(addr, addr + n))
        assert not regs & used, key
        assert omcci.BASE <= addr and addr + n <= omcci.BASE + omcci.COUNT
        used |= regs


@pytest.mark.parametrize("addr, values, expect", [
    (1000, [16], (0, [("hems_current_limit_ma", 16000)])),
    (131, [6, 120], (0, [("safe_current_ma", 6000), ("comm_timeout_s", 120)])),
    (1000, [81], (3, None)),
    (124, [2], (3, None)),
    (141, [1], (2, None)),     # device id is read-only
    (130, [1], (2, None)),     # unmapped
    (1110, [0x4142, 0x4300] + [0] * 8, (0, [("write_user_id", "ABC")])),
    (1112, [0], (3, None)),    # inside the user id, not its start
])
def test_writes(addr, values, expect):
    assert omcci.decode_write(addr, values) == expect
