"""The session journal on the real MicroPython binary, on littlefs over the counting, power-cuttable flash model
(hal/flashdev.py), driven by the real tracker (session_flash_mp.py). Figures for humans: tools/bench/flash_wear.py."""
import pytest

from test_config_flash import run_mp

pytestmark = pytest.mark.mp


def test_power_cut_at_every_flash_operation_of_a_session_keeps_each_session_once():
    rc, out, results = run_mp("import session_flash_mp as f\nf.report(f.power_cut())\n")
    assert rc == 0, out
    r = results[0]
    assert r["failures"] == [], r["failures"][:10]
    assert r["sessions"] == 3 and r["kept"] == 6  # the scenario's sessions, and older ones after a ring rollover
    assert r["cut_points"] == 2 * (r["ops"] + 1) and r["ops"] >= 20
    o = r["outcomes"]
    # cuts land before a session started, while it was open (PowerLoss) and after it was closed
    assert o["power_loss"] > 0 and o["closed"] > 0 and o["not_started"] > 0


def test_a_day_of_sessions_writes_bounded_checkpoints():
    rc, out, results = run_mp("import session_flash_mp as f\nf.report(f.wear_day())\n")
    assert rc == 0, out
    r = results[0]
    assert r["sessions"] == 8
    # 8 sessions of 32.4 kWh (3 h at 3 Wh/s) and 2 h idle: the start, one checkpoint per 0.1 kWh, and one per
    # 15 minutes while idle; no more
    per_session = 1 + 32400 // 100 + 2 * 3600 // 900
    assert 8 * (per_session - 10) <= r["checkpoints"] <= 8 * per_session
    assert r["erases"] < r["checkpoints"] // 10  # a checkpoint is a small program, rarely an erase


def test_polling_open_sessions_allocates_nothing():
    rc, out, results = run_mp("import session_flash_mp as f\nf.report(f.steady_poll())\n")
    assert rc == 0, out
    r = results[0]
    assert r["error"] is None and r["polls"] == 200 and r["open"] == 2
    assert r["checkpoints"] == 2  # the two starts; nothing was due during the locked polls


def test_a_start_before_the_clock_is_set_is_fixed_up_once_it_is():
    rc, out, results = run_mp("import session_flash_mp as f\nf.report(f.clock_fixup())\n")
    assert rc == 0, out
    r = results[0]
    e2, e1 = r["sessions"]  # E2 closed first
    # E2 started and ended before the clock was set: uptime seconds, duration right, no date
    assert (e2["dev_id"], e2["clock"], e2["start"], e2["duration_s"]) == ("E2", False, 20, 30)
    # E1 started at uptime 10 s, 90 s before the clock was set to wall0 at uptime 100 s
    assert (e1["dev_id"], e1["clock"], e1["start"], e1["duration_s"]) == ("E1", True, r["wall0"] - 90, 290)
    assert e1["end"] == r["wall0"] + 200


def test_the_ring_keeps_the_minimum_and_young_sessions_up_to_its_maximum():
    rc, out, results = run_mp("import session_flash_mp as f\nf.report(f.ring())\n")
    assert rc == 0, out
    steps = {seq: (segments, oldest) for seq, segments, oldest in results[0]["steps"]}
    # young sessions: the ring grows to its maximum of 5 segments (10 sessions), then drops the oldest
    assert steps[10] == (5, 1)
    assert steps[11] == (5, 3) and steps[14] == (5, 5)
    # 2000 s later the oldest are older than keep_s: a new segment drops them down to the minimum of 3 (two
    # full ones and the new one), and so does the next
    assert steps[15] == (3, 11)
    assert steps[17] == (3, 13)
    assert results[0]["after_boot"] == list(range(13, 18))  # a boot reads the same ring
