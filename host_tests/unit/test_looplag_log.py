from loadpilot.log import Log
from loadpilot.looplag import LoopLagMonitor


def test_percentiles_and_worst():
    m = LoopLagMonitor()
    for _ in range(990):
        m.record(0)
    for _ in range(10):
        m.record(37)
    m.record(250)  # beyond the last bin: counted as >= 100
    assert m.worst_ms == 250
    assert m.percentile_ms(50) == 0
    assert m.percentile_ms(99) == 37
    assert m.percentile_ms(100) == 100
    assert m.samples == 1001


def test_counter_carries_past_255():
    m = LoopLagMonitor()
    for _ in range(70000):
        m.record(3)
    assert m._count(3) == 70000 and m.percentile_ms(99) == 3


def test_log_ring_keeps_newest_in_order():
    log = Log(size=4, console_level=100)
    seen = []
    log.add_listener(seen.append)
    for i in range(6):
        log.info("t", "line %d" % i)
    log.debug("t", "quiet")
    lines = log.lines()
    assert [l[3] for l in lines] == ["line 3", "line 4", "line 5", "quiet"]
    assert [l[3] for l in log.lines(min_level=20)] == ["line 3", "line 4", "line 5"]
    assert log.count == 7 and len(seen) == 7
