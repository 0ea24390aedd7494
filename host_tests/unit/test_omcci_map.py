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
    (1110, [0x4142, 0x4300] + [0] * 8, (0, [("write_user_id_0", "ABC"), ("write_user_id_1", ""),
                                            ("write_user_id_2", ""), ("write_user_id_3", ""),
                                            ("write_user_id_4", "")])),
    (1112, [0x4546, 0x4748], (0, [("write_user_id_1", "EFGH")])),  # the seed's 2-register pieces
    (1118, [0x5354, 0x5556], (0, [("write_user_id_4", "STUV")])),
    (1113, [0], (3, None)),    # inside a piece, not its start
    (1112, [0x4546], (3, None)),  # half a piece
    (613, [40, 32, 25], (0, [("dlm_operator_limit_l1_ma", 40000), ("dlm_operator_limit_l2_ma", 32000),
                             ("dlm_operator_limit_l3_ma", 25000)])),
    (614, [0], (0, [("dlm_operator_limit_l2_ma", 0)])),  # 0 = no limit
    (615, [1001], (3, None)),  # above 1000 A
    (610, [10], (2, None)),    # the DLM master's own limit is read-only
])
def test_writes(addr, values, expect):
    assert omcci.decode_write(addr, values) == expect
