import asyncio

from loadpilot import supervisor as sup_mod
from loadpilot.log import Log
from loadpilot.looplag import LoopLagMonitor
from loadpilot.supervisor import Supervisor


class CountingWdt:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


def run(coro):
    return asyncio.run(coro)


def test_crashed_task_is_restarted_with_backoff_and_logged(monkeypatch):
    monkeypatch.setattr(sup_mod, "BACKOFF_FIRST_MS", 10)
    log = Log(console_level=100)
    runs = []

    async def flaky():
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("boom %d" % len(runs))
        await asyncio.sleep(10)

    async def main():
        s = Supervisor(log)
        info = s.spawn("flaky", flaky)
        await asyncio.sleep(0.2)
        state = info.state
        s.stop()
        return info, state

    info, state = run(main())
    assert len(runs) == 3
    assert info.restarts == 2 and state == "running"
    errors = [l for l in log.lines() if l[1] == "ERROR"]
    assert len(errors) == 2 and "flaky crashed (RuntimeError: boom 1)" in errors[0][3]
    assert "restart in 10 ms" in errors[0][3] and "restart in 20 ms" in errors[1][3]


def test_watchdog_is_fed_only_while_healthy(monkeypatch):
    monkeypatch.setattr(sup_mod, "BACKOFF_FIRST_MS", 1)
    monkeypatch.setattr(sup_mod, "BACKOFF_MAX_MS", 1)
    log = Log(console_level=100)

    async def always_crashes():
        raise ValueError("broken sensor")

    async def main():
        mon = LoopLagMonitor()
        s = Supervisor(log, mon)
        wdt = CountingWdt()
        s.spawn("looplag", mon.run)
        s.spawn("feeder", lambda: s.feed_watchdog(wdt, period_ms=5))
        await asyncio.sleep(0.1)
        healthy_feeds = wdt.feeds
        s.spawn("bad", always_crashes)
        await asyncio.sleep(0.2)  # it crash-loops past CRASH_LIMIT
        before = wdt.feeds
        await asyncio.sleep(0.1)
        s.stop()
        return healthy_feeds, before, wdt.feeds, s.healthy()

    healthy_feeds, before, after, healthy = run(main())
    assert healthy_feeds >= 5
    assert not healthy
    assert after == before  # no feeding while a critical task crash-loops


def test_a_stopped_task_is_cancelled_and_forgotten():
    async def main():
        log = Log(size=32)
        sup = Supervisor(log)
        ticks = []

        async def worker():
            while True:
                ticks.append(1)
                await asyncio.sleep(0.01)

        keep = sup.spawn("keep", worker)
        gone = sup.spawn("gone", worker)
        await asyncio.sleep(0.05)
        sup.stop_task(gone)
        await asyncio.sleep(0)
        assert [t.name for t in sup.tasks] == ["keep"] and gone.state == "stopped" and gone.task.done()
        n = len(ticks)
        await asyncio.sleep(0.05)
        assert len(ticks) > n and keep.state == "running"  # only the one task stopped
        sup.stop()
    asyncio.run(main())
