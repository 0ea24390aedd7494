"""Benchmark: LoadPilot's RTU slave and master against the micropython-modbus 2.3.7 (umodbus) baseline,
both on the MicroPython unix binary, measured in the same run over socat pty buses.

Figures:
  - heap allocated per served 125-register read (slave), steady state, gc disabled in the window;
  - heap held by a 125-register map;
  - longest loop stall while the master waits for a silent slave (ours awaits; umodbus blocks).
Run: .venv/bin/python tools/bench/modbus_rtu.py
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTEGRATION = os.path.join(ROOT, "host_tests", "integration")
sys.path[:0] = [INTEGRATION, os.path.join(ROOT, "host_tests")]

import ptybus  # noqa: E402
from pymodbus.client import ModbusSerialClient  # noqa: E402

READS_WARM, READS_MEASURED = 20, 50

UMODBUS_SLAVE = r"""
import gc, json, sys
import umodbus_machine_shim
umodbus_machine_shim.PTY = ARGS["pty"]
sys.modules["machine"] = umodbus_machine_shim
from umodbus.serial import ModbusRTU
gc.collect()
a = gc.mem_alloc()
slave = ModbusRTU(addr=1, baudrate=115200, pins=(1, 2))
slave.add_hreg(address=0, value=[100 + i for i in range(125)])
gc.collect()
print(json.dumps({"tag": "map", "bytes": gc.mem_alloc() - a}))
print("slave ready")
served = 0
total = 0
# process() is synchronous: count what each call that served a request allocated; collect between calls
gc.disable()
while served < ARGS["warm"] + ARGS["measured"]:
    if gc.mem_free() < 100000:
        gc.collect()
    a0 = gc.mem_alloc()
    if slave.process():
        served += 1
        if served > ARGS["warm"]:
            total += gc.mem_alloc() - a0
gc.enable()
a0, a1 = 0, total
print(json.dumps({"tag": "alloc", "bytes": a1 - a0, "requests": ARGS["measured"]}))
"""

OUR_MAP = r"""
import gc, json
from loadpilot.modbus.image import RegisterImage
gc.collect()
a = gc.mem_alloc()
img = RegisterImage(0, 125)
gc.collect()
print(json.dumps({"tag": "map", "bytes": gc.mem_alloc() - a}))
"""

OUR_MASTER_STALL = r"""
import asyncio, json, time
from loadpilot import board as boardmod
from loadpilot.hal import unix
from loadpilot.modbus import rtu_master, serial_settings
from loadpilot.modbus.errors import ModbusTimeout
s = serial_settings.parse("COM1,9600,8,n,1")
uart = unix.Hal(boardmod.load(BOARD)).uart("rs485_1", *s.uart_args())
m = rtu_master.RtuMaster(uart, s, timeout_ms=500)
worst = [0]
async def ticker():
    last = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(5)
        now = time.ticks_ms()
        worst[0] = max(worst[0], time.ticks_diff(now, last))
        last = now
async def main():
    asyncio.create_task(ticker())
    await asyncio.sleep_ms(50)
    worst[0] = 0
    t0 = time.ticks_ms()
    try:
        await m.read_holding(9, 0, 1)
    except ModbusTimeout:
        pass
    print(json.dumps({"tag": "stall", "request_ms": time.ticks_diff(time.ticks_ms(), t0), "worst_gap_ms": worst[0]}))
asyncio.run(main())
"""

UMODBUS_MASTER_STALL = r"""
import json, sys, time
import umodbus_machine_shim
umodbus_machine_shim.PTY = ARGS["pty"]
sys.modules["machine"] = umodbus_machine_shim
from umodbus.serial import Serial
host = Serial(uart_id=1, baudrate=9600, pins=(1, 2))
t0 = time.ticks_ms()
try:
    host.read_holding_registers(9, 0, 1)
except OSError:
    pass
ms = time.ticks_diff(time.ticks_ms(), t0)
print(json.dumps({"tag": "stall", "request_ms": ms, "worst_gap_ms": ms}))
"""


def result(proc, tag):
    return json.loads(ptybus.wait_line(proc, '"tag": "%s"' % tag, timeout=60))


def run_slave(script, args, extra_path=()):
    bus = ptybus.PtyPair()
    args = dict(args)
    if "pty" in args:
        args["pty"] = bus.fw
    proc = ptybus.start_micropython(script, bus.fw, args=args, extra_path=extra_path)
    try:
        map_bytes = None
        if "map" in args.get("want", ()):
            map_bytes = result(proc, "map")["bytes"]
        ptybus.wait_line(proc, "slave ready")
        c = ModbusSerialClient(bus.peer, baudrate=115200, timeout=2, retries=0)
        c.connect()
        for _ in range(READS_WARM + READS_MEASURED):
            r = c.read_holding_registers(0, count=125, device_id=1)
            assert not r.isError() and len(r.registers) == 125, r
        c.close()
        alloc = result(proc, "alloc")
    finally:
        ptybus.stop(proc)
        bus.close()
    return alloc["bytes"] / alloc["requests"], map_bytes


def run_stall(script, args, extra_path=()):
    bus = ptybus.PtyPair()
    args = dict(args)
    if "pty" in args:
        args["pty"] = bus.fw
    proc = ptybus.start_micropython(script, bus.fw, args=args, extra_path=extra_path)
    try:
        return result(proc, "stall")
    finally:
        ptybus.stop(proc)
        bus.close()


def main():
    import logging
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    umod = (ptybus.UMODBUS_DIR, INTEGRATION)
    slave_script = open(os.path.join(INTEGRATION, "mp_rtu_slave.py")).read()
    ours_per_read, _ = run_slave(slave_script, {"com": "COM1,115200,8,n,1", "quiet_uart": True,
                                                "alloc": [READS_WARM, READS_MEASURED]})
    proc = ptybus.start_micropython(OUR_MAP, "/dev/null")
    ours_map = result(proc, "map")["bytes"]
    ptybus.stop(proc)
    theirs_per_read, theirs_map = run_slave(UMODBUS_SLAVE, {"pty": None, "warm": READS_WARM,
                                                           "measured": READS_MEASURED, "want": ["map"]},
                                            extra_path=umod)
    ours_stall = run_stall(OUR_MASTER_STALL, {})
    theirs_stall = run_stall(UMODBUS_MASTER_STALL, {"pty": None}, extra_path=umod)

    rows = [
        ("slave: heap per 125-register read (bytes)", ours_per_read, theirs_per_read, "0"),
        ("slave: heap held by a 125-register map (bytes)", ours_map, theirs_map, "< baseline"),
        ("master: silent slave, request time (ms)", ours_stall["request_ms"], theirs_stall["request_ms"],
         "= its timeout (500)"),
        ("master: silent slave, longest loop stall (ms)", ours_stall["worst_gap_ms"], theirs_stall["worst_gap_ms"],
         "< 50"),
    ]
    print("%-50s %12s %12s   %s" % ("figure (unix port, MicroPython 1.29)", "LoadPilot", "umodbus", "bar"))
    for name, ours, theirs, bar in rows:
        print("%-50s %12s %12s   %s" % (name, _fmt(ours), _fmt(theirs), bar))
    print("LoadPilot's slave runs over the unix HAL UART minus two host-only allocations (poll() result lists,")
    print("the virtual board's DE edge log; see HostQuietUart in host_tests/integration/mp_rtu_slave.py);")
    print("umodbus runs over host_tests/integration/umodbus_machine_shim.py (read() allocates only its result).")
    ok = ours_per_read == 0 and ours_map < theirs_map and ours_stall["worst_gap_ms"] < 50
    print("bars met" if ok else "BAR MISSED")
    return 0 if ok else 1


def _fmt(v):
    return "%.1f" % v if isinstance(v, float) else str(v)


if __name__ == "__main__":
    sys.exit(main())
