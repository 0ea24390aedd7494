# Polling of one transport (an RS485 bus, or one Modbus TCP host:port) and the comm state of its devices.
# A cycle reads the grid meters (role 3) first, then every other device in configuration order, writing each
# wallbox's set-point right after its read (only on change, plus the keep-alive). A device that stopped
# answering is retried every `retry_every` cycles only, so a dead slave costs its timeout on few cycles.
import asyncio
import time

from loadpilot.codes import ROLE_GRID
from loadpilot.modbus.errors import ModbusError, ModbusTransportError

_COMM_ERRORS = (ModbusError, ModbusTransportError, OSError, ValueError)


class Entry:
    """One device on a bus: its driver and its Site state, which holds the comm state get_dev_info shows."""

    def __init__(self, dev, driver, state):
        self.dev = dev
        self.dev_id = dev["dev_id"]
        self.driver = driver
        self.state = state
        self.failed_cycle = 0
        self.ok_ms = None

    @property
    def com_err(self):
        return self.state.com_err

    @property
    def com_errors(self):
        return self.state.com_errors

    @property
    def last_error(self):
        return self.state.last_error

    @property
    def last_error_ms(self):
        return self.state.last_error_ms

    def failed(self, why, now_ms, cycle):
        if not self.state.com_err:
            self.failed_cycle = cycle
            self.driver.lost()
        self.state.failed(why, now_ms)

    def ok(self, now_ms):
        self.state.com_err = False
        self.ok_ms = now_ms


class Bus:
    def __init__(self, name, entries, site, setpoints, clock=None, period_ms=0, retry_every=3):
        self.name = name
        self.entries = [e for e in entries if e.dev.get("role") == ROLE_GRID] + \
                       [e for e in entries if e.dev.get("role") != ROLE_GRID]
        self.site = site
        self.setpoints = setpoints
        self.clock = clock or time.ticks_ms
        self.period_ms = period_ms  # a cycle starts at most this often (0: back to back)
        self.retry_every = retry_every
        self.client = None        # the transport, set by the layer that opened it (and closes it)
        self.pool = None          # a Lock shared by TCP transports past the socket budget: connect per poll
        self.cycles = 0
        self.cycle_ms = None      # duration of the last full cycle
        self.max_cycle_ms = 0

    def _skip(self, e):
        return e.com_err and (self.cycles - e.failed_cycle) % self.retry_every != 0

    async def visit(self, e):
        if self._skip(e):
            return
        now = self.clock()
        try:
            await e.driver.poll(e.state, now)
            if e.driver.is_evse:
                await e.driver.apply(self.setpoints.get(e.dev_id), now)
        except _COMM_ERRORS as ex:
            e.failed(str(ex) or type(ex).__name__, now, self.cycles)
            self.site.version += 1
            return
        e.ok(now)
        self.site.version += 1

    async def cycle(self):
        t0 = self.clock()
        pool = self.pool
        if pool is not None:  # one socket for all such hosts: held for this cycle, then closed and passed on
            await pool.acquire()
        try:
            for e in self.entries:
                await self.visit(e)
        finally:
            if pool is not None:
                try:
                    await self.client.close()
                finally:
                    pool.release()
        self.cycles += 1
        self.cycle_ms = time.ticks_diff(self.clock(), t0)
        if self.cycle_ms > self.max_cycle_ms:
            self.max_cycle_ms = self.cycle_ms

    async def run(self):
        while True:
            t0 = self.clock()
            await self.cycle()
            left = self.period_ms - time.ticks_diff(self.clock(), t0)
            await asyncio.sleep_ms(left if left > 0 else 1)  # always yield once per cycle

    def view(self):
        return {"bus": self.name, "devices": [e.dev_id for e in self.entries], "cycles": self.cycles,
                "cycle_ms": self.cycle_ms, "max_cycle_ms": self.max_cycle_ms, "per_poll": self.pool is not None}
