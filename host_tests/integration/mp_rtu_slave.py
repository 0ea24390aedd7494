# MicroPython side of the RTU slave tests: our RtuSlave on the board's rs485_1 (a pty), serving
#   unit 1: registers 0..199, function codes 3, 4, 6, 16; register a starts as 100 + a
#   unit 7: registers 1000..1129, function codes 3, 6, 16; register 1000 + a starts as 7000 + a
# ARGS (a dict): "com" the COM settings (default COM1,9600,8,n,1); "alloc": [warmup, measured] reports the heap
# growth over `measured` answered requests after `warmup` answered ones; "quiet_uart": True wraps the HAL Uart (see HostQuietUart). stdin commands (one per line): "stats" prints the slave's counters and heap.
import asyncio
import gc
import json
import select
import sys

from loadpilot import board as boardmod
from loadpilot.hal import unix
from loadpilot.modbus import pdu, serial_settings
from loadpilot.modbus.image import RegisterImage
from loadpilot.modbus.rtu_slave import RtuSlave

settings = serial_settings.parse(ARGS.get("com", "COM1,9600,8,n,1"))
hal = unix.Hal(boardmod.load(BOARD))
uart = hal.uart(settings.board_uart(), *settings.uart_args())


class HostQuietUart:
    """The unix HAL Uart minus its two host-only allocations, so the measurement sees the firmware's path:
    any()/readinto() use select's ipoll() (the HAL's poll(0) allocates a result list per call) and the DE
    line is counted instead of going to the virtual board's event log (a tuple per edge). On the ESP32,
    machine.UART.any()/readinto() and a Pin write allocate nothing."""

    def __init__(self, u):
        self.u = u
        self.char_us = u.char_us
        self._p = select.poll()
        self._p.register(u._f, select.POLLIN)
        self._one = bytearray(1)
        self.de_edges = 0

    def any(self):
        for _ in self._p.ipoll(0):
            return 1
        return 0

    def readinto(self, buf, n):
        got = 0
        while got < n and self.any():
            if self.u._f.readinto(self._one) != 1:
                break
            buf[got] = self._one[0]
            got += 1
        return got

    def write(self, buf):
        return self.u.write(buf)

    def tx_done(self):
        return self.u.tx_done()

    def set_de(self, v):
        self.de_edges += 1


if ARGS.get("quiet_uart"):
    uart = HostQuietUart(uart)

router = pdu.Router()
img1 = RegisterImage(0, 200, functions=(3, 4, 6, 16))
img7 = RegisterImage(1000, 130, functions=(3, 6, 16))
for a in range(200):
    img1.buf[2 * a] = (100 + a) >> 8
    img1.buf[2 * a + 1] = (100 + a) & 0xFF
for a in range(130):
    img7.buf[2 * a] = (7000 + a) >> 8
    img7.buf[2 * a + 1] = (7000 + a) & 0xFF
router.add(1, img1)
router.add(7, img7)
slave = RtuSlave(uart, settings, router)


def report(tag):
    # the virtual board keeps a bounded log of output edges (DE) that fills up to 256 entries; empty it so
    # mem_alloc shows what the slave itself holds
    hal.vb.events.clear()
    gc.collect()
    d = slave.stats()
    d["tag"] = tag
    d["mem_alloc"] = gc.mem_alloc()
    print(json.dumps(d))


async def commands():
    reader = asyncio.StreamReader(sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        if line.strip() == b"stats":
            report("stats")


async def measure_alloc(warmup, measured):
    while slave.answered < warmup:
        await asyncio.sleep_ms(1)
    gc.collect()
    gc.disable()  # a collection inside the window would hide allocations
    a0 = gc.mem_alloc()
    while slave.answered < warmup + measured:
        await asyncio.sleep_ms(1)
    a1 = gc.mem_alloc()
    gc.enable()
    print(json.dumps({"tag": "alloc", "bytes": a1 - a0, "requests": measured}))


async def main():
    asyncio.create_task(slave.run())
    asyncio.create_task(commands())
    if "alloc" in ARGS:
        asyncio.create_task(measure_alloc(ARGS["alloc"][0], ARGS["alloc"][1]))
    print("slave ready")
    while True:
        await asyncio.sleep_ms(1000)


asyncio.run(main())
