# MicroPython side of the RTU master test: our RtuMaster on rs485_1 (a pty) against a pymodbus RTU server
# that knows units 1 and 2 (holding a = unit*1000 + a, input = holding + 1). Prints one JSON line per step;
# the test checks them. A ticker task runs throughout to show the loop keeps going while requests wait.
import asyncio
import json
import time

from loadpilot import board as boardmod
from loadpilot.hal import unix
from loadpilot.modbus import rtu_master, serial_settings
from loadpilot.modbus.errors import ModbusError, ModbusTimeout

settings = serial_settings.parse(ARGS.get("com", "COM1,9600,8,n,1"))
hal = unix.Hal(boardmod.load(BOARD))
uart = hal.uart(settings.board_uart(), *settings.uart_args())
master = rtu_master.RtuMaster(uart, settings, timeout_ms=300, retries=0)
ticks = [0]


def out(step, **kw):
    kw["step"] = step
    print(json.dumps(kw))


async def ticker():
    while True:
        ticks[0] += 1
        await asyncio.sleep_ms(10)


async def attempt(step, coro):
    t0 = time.ticks_ms()
    n0 = ticks[0]
    try:
        value = await coro
        out(step, value=value, ms=time.ticks_diff(time.ticks_ms(), t0), ticks=ticks[0] - n0)
    except ModbusError as e:
        out(step, exception=e.code, ms=time.ticks_diff(time.ticks_ms(), t0), ticks=ticks[0] - n0)
    except ModbusTimeout:
        out(step, timeout=True, ms=time.ticks_diff(time.ticks_ms(), t0), ticks=ticks[0] - n0)


async def main():
    asyncio.create_task(ticker())
    m = master
    await attempt("read1", m.read_holding(1, 0, 5))
    await attempt("input2", m.read_input(2, 10, 3))
    await attempt("read125", m.read_holding(2, 100, 125))
    await attempt("write1", m.write_single(1, 3, 4242))
    await attempt("writemany2", m.write_multiple(2, 20, [7, 8, 65535]))
    await attempt("readback1", m.read_holding(1, 2, 3))
    await attempt("readback2", m.read_holding(2, 19, 5))
    await attempt("bad_address", m.read_holding(1, 5000, 2))
    await attempt("silent", m.read_holding(9, 0, 1))
    await attempt("after_silent", m.read_holding(1, 0, 1))
    m.retries = 1
    await attempt("silent_retry", m.read_holding(9, 0, 1))
    m.retries = 0
    # two tasks share the bus: the lock serialises them, both get their own answers
    r = await asyncio.gather(m.read_holding(1, 10, 2), m.read_holding(2, 10, 2), m.read_holding(1, 12, 1))
    out("concurrent", value=r)
    await attempt("broadcast", m.write_single(0, 30, 99))
    await attempt("after_broadcast", m.read_holding(1, 30, 1))
    out("stats", stats={str(u): s.as_dict() for u, s in m.stats.items()})
    out("done")


asyncio.run(main())
