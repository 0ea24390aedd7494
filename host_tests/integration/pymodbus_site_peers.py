"""The Charging Manager's external devices, simulated with pymodbus 3.16 in one process:
  RTU on a pty: Power Brain wallboxes (8000+ map) as units 1..N, an Eastron SDM630 as unit 100, a YTL DEM4A
  as unit 101 (holding floats) and a made-up integer meter as unit 102 (input registers,
  some low word first: read through a user-defined definition);
  TCP on 127.0.0.1:port (if port > 0): an OMCCI station as unit 1.
Usage: pty baud n_boxes tcp_port [switchable], switchable = comma-separated units whose 8113 bit 8 says they
may switch 1p/3p (8087) while plugged in. Commands on stdin, one JSON object a line, answers on stdout:
  {"op": "get", "unit": u, "addr": a, "count": n[, "tcp": true]}  -> {"values": [...]}
  {"op": "silence", "unit": u} / {"op": "wake", "unit": u}          -> {"ok": true}
  {"op": "requests"}                                                -> {"tcp": n}: requests the TCP server got
  {"op": "set", "unit": u, "addr": a, "values": [...][, "fc": 4]}   -> {"ok": true} (fc 4: the meter's
                                                                       input registers)"""
import asyncio
import json
import logging
import struct
import sys
import threading

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

METER_UNIT = 100
DEM4A_UNIT = 101
INT_METER_UNIT = 102
INPUT_UNITS = (METER_UNIT, INT_METER_UNIT)


def f32(v):
    return list(struct.unpack(">HH", struct.pack(">f", v)))


def words(v, n=2):
    return [(v >> (16 * (n - 1 - i))) & 0xFFFF for i in range(n)]


def powerbrain_image(u, switchable=False):
    regs = [0] * 122  # 8000..8121

    def put(addr, vals):
        regs[addr - 8000:addr - 8000 + len(vals)] = vals

    put(8000, [0xCF05, 0])
    put(8058, words(u * 1000, 4))
    put(8062, words(u * 100))
    for i in range(3):
        put(8064 + 2 * i, words(u * 10))  # u A on each phase
    put(8083, words(300))
    put(8092, [2, 160, 1, u * 10])  # C (charging), limit 16 A, enabled, charging u A
    put(8112, [1, 0x100 if switchable else 0])
    return regs


def sdm630_image():
    regs = [0] * 0x50
    for i, (v, a, w) in enumerate(((230.0, 10.0, 2300.0), (231.0, 5.5, 1270.5), (229.0, 2.0, -458.0))):
        regs[2 * i:2 * i + 2] = f32(v)
        regs[6 + 2 * i:8 + 2 * i] = f32(a)
        regs[12 + 2 * i:14 + 2 * i] = f32(w)
    regs[0x34:0x36] = f32(3112.5)
    regs[0x48:0x4A] = f32(4321.0)
    regs[0x4A:0x4C] = f32(12.5)
    return regs


def dem4a_image():
    """Holding registers 0..0x111, the L1 ones set (the unit tests check that only those are read)."""
    regs = [0] * 0x112
    for addr, v in ((0x000E, 229.5), (0x0016, 7.25), (0x001C, 1.66), (0x0108, 812.5), (0x0110, 3.5)):
        regs[addr:addr + 2] = f32(v)
    return regs


def int_meter_image():
    """0..0x47 and a name at 0x100: voltages u16 0.1 V; currents i32 mA (L2 low word first); power f32 kW
    low word first; import i64 in 0.01 kWh; temperature i16 0.1 C."""
    regs = [0] * 0x104
    regs[0:3] = [2301, 2289, 2315]
    regs[0x10:0x12] = words(12500)
    regs[0x12:0x14] = [3000, 0]
    regs[0x14:0x16] = words((-4000) & 0xFFFFFFFF)
    hi, lo = f32(3.75)
    regs[0x20:0x22] = [lo, hi]
    regs[0x40:0x44] = words(123456789, 4)
    regs[0x30] = (-125) & 0xFFFF
    regs[0x100:0x104] = [0x4143, 0x4D45, 0x2D33, 0]  # "ACME-3"
    return regs


def omcci_image():
    regs = [0] * 1020  # 100..1119

    def put(addr, vals):
        regs[addr - 100:addr - 100 + len(vals)] = vals

    put(122, [3])  # C: charging
    for i in range(3):
        put(212 + 2 * i, words(6000))
        put(222 + 2 * i, words(230))
    put(218, words(4242))
    put(220, words(4140))
    put(141, [0xEBEE])
    return regs


async def main():
    logging.basicConfig(level=logging.CRITICAL)
    pty, baud, n_boxes, tcp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    switchable = [int(u) for u in sys.argv[5].split(",") if u] if len(sys.argv) > 5 else []
    devices = {}
    for u in range(1, n_boxes + 1):
        hr = ModbusSequentialDataBlock(8001, powerbrain_image(u, u in switchable))  # pymodbus looks up address + 1
        devices[u] = ModbusDeviceContext(hr=hr)
    ir = ModbusSequentialDataBlock(1, sdm630_image())
    devices[METER_UNIT] = ModbusDeviceContext(ir=ir)
    devices[DEM4A_UNIT] = ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, dem4a_image()))
    devices[INT_METER_UNIT] = ModbusDeviceContext(ir=ModbusSequentialDataBlock(1, int_meter_image()))
    units = set(devices)
    silent = set()

    def quiet(sending, data):
        # a silenced or unknown unit does not answer (pymodbus would send exception 04 for a stranger)
        if sending and data and (data[0] not in units or data[0] in silent):
            return b""
        return data

    servers = [ModbusSerialServer(ModbusServerContext(devices=devices, single=False), port=pty, baudrate=baud,
                                  ignore_missing_devices=True, trace_packet=quiet)]
    tcp_requests = [0]

    def count(sending, data):
        if not sending and data:
            tcp_requests[0] += 1
        return data

    if tcp_port:
        hr = ModbusSequentialDataBlock(101, omcci_image())
        servers.append(ModbusTcpServer(ModbusServerContext(devices={1: ModbusDeviceContext(hr=hr)}, single=False),
                                       address=("127.0.0.1", tcp_port), ignore_missing_devices=True,
                                       trace_packet=count))

    loop = asyncio.get_running_loop()

    def on_loop(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    def commands():
        for line in sys.stdin:
            try:
                req = json.loads(line)
                op = req["op"]
                server = servers[1] if req.get("tcp") else servers[0]
                if op == "get":
                    fc = req.get("fc") or (4 if req["unit"] in INPUT_UNITS else 3)
                    values = on_loop(server.async_getValues(req["unit"], fc, req["addr"], req["count"]))
                    print(json.dumps({"values": values}), flush=True)
                elif op == "set":
                    on_loop(server.async_setValues(req["unit"], req.get("fc", 16), req["addr"], req["values"]))
                    print(json.dumps({"ok": True}), flush=True)
                elif op == "requests":
                    print(json.dumps({"tcp": tcp_requests[0]}), flush=True)
                elif op in ("silence", "wake"):
                    (silent.add if op == "silence" else silent.discard)(req["unit"])
                    print(json.dumps({"ok": True}), flush=True)
            except Exception as e:  # a bad command is the test's bug: say so, keep serving
                print(json.dumps({"error": repr(e)}), flush=True)

    threading.Thread(target=commands, daemon=True).start()
    print("peers ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


asyncio.run(main())
