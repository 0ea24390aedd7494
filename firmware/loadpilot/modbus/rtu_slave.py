# Async Modbus RTU slave for one RS485 bus, serving every unit id in its Router (unit -> RegisterImage or
# another handler, see pdu.py). It answers only its own units, stays silent for frames addressed to other
# nodes and for anything malformed on the line, and applies broadcast (unit 0) writes to all its units
# without answering. Buffers are preallocated: serving a read allocates nothing in steady state.
import asyncio
import time

from loadpilot.modbus import pdu, rtu

_POLL_MS = 1  # while a frame arrives: below t1.5 at 9600 baud (1.56 ms), so gaps and frame ends show on time
_IDLE_POLL_MS = 5  # a quiet line is looked at less often (the UART buffers the first bytes meanwhile)
_BUSY_WINDOW_US = 50000  # stay at the fast cadence this long after the last byte
_BROADCAST_FUNCTIONS = (5, 6, 15, 16)


class RtuSlave:
    def __init__(self, uart, settings, router, check_gaps=True):
        self.port = rtu.RtuPort(uart, settings.t35_us, settings.t15_us, check_gaps)
        self.router = router
        self._req = memoryview(self.port.rx)[1:]
        self._resp = memoryview(self.port.tx)[1:]
        self.requests = 0  # frames for one of our units (including broadcasts)
        self.answered = 0
        self.broadcasts = 0
        self.foreign = 0  # good frames for other nodes, ignored

    async def run(self):
        port = self.port
        uart = port.uart
        while True:
            n = port.poll()
            if not n:
                busy = port.rx_len or time.ticks_diff(time.ticks_us(), port.line_free_us) < _BUSY_WINDOW_US
                await asyncio.sleep_ms(_POLL_MS if busy else _IDLE_POLL_MS)
                continue
            unit = port.rx[0]
            if unit == 0:
                await self._broadcast(n)
                continue
            handler = self.router.get(unit)
            if handler is None:
                self.foreign += 1
                continue
            self.requests += 1
            if getattr(handler, "is_async", False):
                try:
                    m = await handler.handle(self._req, n - 3, self._resp)
                except Exception:  # a failing handler costs one exception answer, never the bus task
                    m = pdu.exception(self._resp, port.rx[1], pdu.DEVICE_FAILURE)
            else:
                m = pdu.serve(handler, self._req, n - 3, self._resp)
            if not m:
                continue
            port.tx[0] = unit
            n = port.seal(1 + m)
            # hal.rs485_send inlined (calling a coroutine allocates its frame): DE up, write, wait for the
            # last stop bit, DE down
            port.begin_send(n)
            await asyncio.sleep_ms(port.wire_ms(n))
            while not uart.tx_done():
                await asyncio.sleep_ms(0)
            port.end_send()
            self.answered += 1

    async def _broadcast(self, n):
        # a broadcast is never answered; only writes make sense for it (Modbus serial line spec 2.1)
        fc = self.port.rx[1]
        if fc not in _BROADCAST_FUNCTIONS:
            return
        self.requests += 1
        self.broadcasts += 1
        for unit in self.router.units():
            handler = self.router.get(unit)
            # async handlers (the proxy) answer per unit, so a broadcast is not theirs to fan out
            if unit == 0 or handler is None or getattr(handler, "is_async", False):
                continue
            if fc in handler.functions:
                pdu.serve(handler, self._req, n - 3, self._resp)

    def stats(self):
        p = self.port
        return {"requests": self.requests, "answered": self.answered, "broadcasts": self.broadcasts,
                "foreign": self.foreign, "frames": p.frames, "crc_errors": p.crc_errors,
                "gap_errors": p.gap_errors, "overlong": p.overlong, "runts": p.runts}
