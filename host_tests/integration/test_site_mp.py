"""The Charging Manager end to end on the MicroPython binary: the firmware is master of an RTU bus with
pymodbus Power Brain wallboxes and an SDM630 grid meter; allocation reaches the boxes as set-points."""
import pytest

from site_rig import METER, SiteRig

pytestmark = pytest.mark.mp


@pytest.fixture
def rig(tmp_path):
    r = SiteRig(tmp_dir=str(tmp_path))
    yield r
    r.close()


def test_allocation_reaches_the_wallboxes_and_an_overload_cuts_it(rig):
    rig.set_grid_ma(10000)
    # the boxes report charging: the manager writes its allocation (6 A at start, then slowly up)
    assert rig.wait(lambda: all(6000 <= rig.limit_ma(u) <= 16000 for u in (1, 2, 3)))
    # the manager's allocation is what each box carries (set-points written on change)
    assert rig.wait(lambda: all(rig.offered_ma(u) == rig.device("E%d" % (u + 1)).get("alloc_ma")
                                for u in (1, 2, 3)))
    rig.set_grid_ma(45000)  # the house takes far more than the 32 A connection
    assert rig.wait(lambda: all(rig.offered_ma(u) == 0 for u in (1, 2, 3)), timeout=15)  # paused on the bus
    assert rig.device("E2")["reason"] in ("fuse", "overdraw", "priority_pause", "pause_hold")


def test_silent_grid_meter_and_silent_wallbox(rig):
    rig.set_grid_ma(5000)
    assert rig.wait(lambda: all(rig.limit_ma(u) >= 6000 for u in (1, 2, 3)))
    rig.peers.cmd(op="silence", unit=METER)
    # meter_timeout_s is 3 s: the fail-safe budget (6 A per phase for all boxes) follows within two cycles
    assert rig.wait(lambda: rig.device("E2").get("reason") == "failsafe" or
                    rig.device("E3").get("reason") == "failsafe", timeout=15)
    assert rig.wait(lambda: sum(rig.offered_ma(u) for u in (1, 2, 3)) <= 6000, timeout=15)
    rig.peers.cmd(op="wake", unit=METER)
    rig.peers.cmd(op="silence", unit=2)  # one wallbox goes silent: offline, counted at its fail-safe current
    assert rig.wait(lambda: rig.device("E3")["state"] == 6, timeout=15)
    assert rig.wait(lambda: rig.device("E3").get("reason") == "failsafe", timeout=15)
    rig.peers.cmd(op="wake", unit=2)
    assert rig.wait(lambda: rig.device("E3")["state"] != 6, timeout=20)  # it rejoins
