import pytest

import mpshim
from loadpilot.evse.s0 import S0Meter


@pytest.fixture
def clock():
    c = mpshim.FakeClock(1000)
    mpshim.use_clock(c)
    yield c
    mpshim.use_clock(None)


def pulses(m, clock, n, spacing_ms):
    for _ in range(n):
        clock.advance_ms(spacing_ms)
        m.irq()


def test_energy_and_power_from_pulses(clock):
    m = S0Meter(pulses_per_kwh=1000, now_ms=clock.ticks_ms())
    pulses(m, clock, 10, 1000)  # 1 Wh per second = 3600 W
    m.poll(clock.ticks_ms())
    assert m.energy_wh == 10 and m.pulses == 10
    assert m.power_w == 3600
    assert m.time_per_pulse_ms() == 1000


def test_other_pulse_rate(clock):
    m = S0Meter(pulses_per_kwh=800, now_ms=clock.ticks_ms())
    pulses(m, clock, 400, 450)  # 1.25 Wh per pulse every 0.45 s = 10000 W
    m.poll(clock.ticks_ms())
    assert m.energy_wh == 500
    assert m.power_w == 10000


def test_bounce_is_ignored(clock):
    m = S0Meter(pulses_per_kwh=1000, min_spacing_ms=20, now_ms=clock.ticks_ms())
    for _ in range(5):
        clock.advance_ms(500)
        m.irq()
        clock.advance_ms(3)
        m.irq()   # contact bounce 3 ms after the edge
        clock.advance_ms(5)
        m.irq()
    m.poll(clock.ticks_ms())
    assert m.pulses == 5 and m.bounces == 10
    assert m.time_per_pulse_ms() == 508


def test_power_decays_and_drops_to_zero(clock):
    m = S0Meter(pulses_per_kwh=1000, zero_after_ms=60000, now_ms=clock.ticks_ms())
    pulses(m, clock, 3, 1000)
    m.poll(clock.ticks_ms())
    assert m.power_w == 3600
    clock.advance_ms(4000)  # no pulse for 4 s: at most 1 Wh per 4 s
    m.poll(clock.ticks_ms())
    assert m.power_w == 900
    clock.advance_ms(60000)
    m.poll(clock.ticks_ms())
    assert m.power_w == 0


def test_one_pulse_gives_no_power(clock):
    m = S0Meter(now_ms=clock.ticks_ms())
    pulses(m, clock, 1, 100)
    m.poll(clock.ticks_ms())
    assert m.power_w == 0 and m.energy_wh == 1


def test_persistence_cadence_bounds_flash_writes_and_loss(clock):
    saved = []
    m = S0Meter(pulses_per_kwh=1000, persist=lambda wh, p: saved.append((wh, p)), persist_every_wh=100,
                persist_every_ms=900000, now_ms=clock.ticks_ms())
    # 11 kW for an hour: 11000 Wh, one pulse every 327 ms, polled every second
    max_unsaved = 0
    for s in range(3600):
        pulses(m, clock, 3, 327)
        clock.advance_ms(1000 - 981)
        m.poll(clock.ticks_ms())
        max_unsaved = max(max_unsaved, m.energy_wh - (saved[-1][0] if saved else 0))
    assert m.energy_wh == 10800
    assert 100 <= len(saved) <= 10800 // 100 + 4  # per 100 Wh, plus at most 4 time-based per hour
    assert max_unsaved < 100  # what a power cut right now would lose


def test_time_based_save_of_a_slow_trickle(clock):
    saved = []
    m = S0Meter(persist=lambda wh, p: saved.append(wh), persist_every_wh=100, persist_every_ms=900000,
                now_ms=clock.ticks_ms())
    pulses(m, clock, 5, 1000)
    m.poll(clock.ticks_ms())
    assert saved == []
    for _ in range(900):
        clock.advance_ms(1000)
        m.poll(clock.ticks_ms())
    assert saved == [5]
    for _ in range(2000):  # nothing new: no more writes
        clock.advance_ms(1000)
        m.poll(clock.ticks_ms())
    assert saved == [5]


def test_restore_and_rebase(clock):
    saved = []
    m = S0Meter(pulses_per_kwh=1000, energy_wh=12345, pulses=500, persist=lambda wh, p: saved.append((wh, p)),
                now_ms=clock.ticks_ms())
    pulses(m, clock, 10, 1000)
    m.poll(clock.ticks_ms())
    assert m.energy_wh == 12355 and m.pulses == 510
    m.set_pulses_per_kwh(500)  # 2 Wh per pulse from now on; the energy so far is kept
    pulses(m, clock, 10, 1000)
    m.poll(clock.ticks_ms())
    assert m.energy_wh == 12375
    m.flush(clock.ticks_ms())
    assert saved[-1] == (12375, 520)
    with pytest.raises(ValueError):
        m.set_pulses_per_kwh(0)
