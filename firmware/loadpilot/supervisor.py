# Supervisor: runs each long-lived task, restarts one that raised (with backoff and a log line), and feeds
# the hardware watchdog only while the loop is healthy, so a wedged loop or a crash-looping task resets us.
import asyncio
import time

BACKOFF_FIRST_MS = 500
BACKOFF_MAX_MS = 60000
STABLE_MS = 60000  # a task that ran this long without raising has its backoff reset
CRASH_LIMIT = 10   # consecutive crashes of a critical task after which we stop feeding the watchdog


class TaskInfo:
    # until a task first crashes, these class values stand in (fewer instance attributes: a smaller dict each)
    restarts = 0
    consecutive_crashes = 0
    last_error = None

    def __init__(self, name, factory, critical):
        self.name = name
        self.factory = factory
        self.critical = critical
        self.state = "starting"
        self.task = None

    def view(self):
        return {"name": self.name, "state": self.state, "restarts": self.restarts, "last_error": self.last_error}


class Supervisor:
    def __init__(self, log, monitor=None):
        self.log = log
        self.monitor = monitor
        self.tasks = []

    def spawn(self, name, factory, critical=True):
        """factory() returns a fresh coroutine each time the task (re)starts."""
        info = TaskInfo(name, factory, critical)
        self.tasks.append(info)
        info.task = asyncio.create_task(self._keep_running(info))
        return info

    async def _keep_running(self, info):
        backoff = BACKOFF_FIRST_MS
        while True:
            started = time.ticks_ms()
            info.state = "running"
            try:
                await info.factory()
                info.last_error = "returned"
                self.log.warn("supervisor", "task %s returned; restarting" % info.name)
            except asyncio.CancelledError:
                info.state = "stopped"
                raise
            except Exception as e:  # anything a task raises is logged and the task restarted
                info.last_error = "%s: %s" % (type(e).__name__, e)
                self.log.error("supervisor", "task %s crashed (%s); restart in %d ms"
                               % (info.name, info.last_error, backoff))
            if time.ticks_diff(time.ticks_ms(), started) >= STABLE_MS:
                backoff = BACKOFF_FIRST_MS
                info.consecutive_crashes = 0
            info.consecutive_crashes += 1
            info.restarts += 1
            info.state = "backoff"
            await asyncio.sleep_ms(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_MS)

    def healthy(self):
        for t in self.tasks:
            if t.critical and t.consecutive_crashes >= CRASH_LIMIT:
                return False
        if self.monitor is not None and self.monitor.age_ms() > 1000:
            return False
        return True

    async def feed_watchdog(self, wdt, period_ms=1000):
        while True:
            if self.healthy():
                wdt.feed()
            else:
                self.log.error("supervisor", "unhealthy: watchdog not fed")
            await asyncio.sleep_ms(period_ms)

    def view(self):
        return [t.view() for t in self.tasks]

    def stop_task(self, info):
        """Cancel one task spawned here and forget it (a rebuilt part of the app starts its tasks anew).
        -> the asyncio task, for a caller that must wait until it has unwound."""
        if info.task is not None:
            info.task.cancel()
        if info in self.tasks:
            self.tasks.remove(info)
        return info.task

    def stop(self):
        for t in self.tasks:
            if t.task is not None:
                t.task.cancel()
