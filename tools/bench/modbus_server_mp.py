# Benchmark server, run on the MicroPython binary by tools/bench/modbus.py: serves the same 1,100-register
# map with LoadPilot's Modbus TCP server ("ours") or with micropython-modbus 2.3.7 ("peer"), beside a 10 ms
# ticker task that records the worst loop stall. argv: ours|peer port.
#
# Measurements are taken inside this process when the driver reads "mark" registers 5000..5005 (unit 2):
#   5000 gc.collect()   5001 record gc.mem_alloc()   5002 record CPU ns (/proc/self/schedstat)
#   5003 reset worst stall   5004 record worst stall ms   5005 print the records   5006 forget the records
import asyncio
import gc
import sys
import time

side = sys.argv[1]
port = int(sys.argv[2])
MAP_REGS = 1100
MARK_BASE = 5000

records = [0] * 32
n_records = 0
worst_stall_ms = 0


def cpu_ns():
    with open("/proc/self/schedstat") as f:
        return int(f.read().split()[0])


def mark(which):
    global n_records, worst_stall_ms
    if which == 0:
        gc.collect()
    elif which == 1:
        records[n_records] = gc.mem_alloc()
        n_records += 1
    elif which == 2:
        records[n_records] = cpu_ns()
        n_records += 1
    elif which == 3:
        worst_stall_ms = 0
    elif which == 4:
        records[n_records] = worst_stall_ms
        n_records += 1
    elif which == 5:
        print("MARKS", " ".join(str(records[i]) for i in range(n_records)))
    elif which == 6:
        n_records = 0


async def ticker():
    global worst_stall_ms
    while True:
        t = time.ticks_ms()
        await asyncio.sleep_ms(10)
        lag = time.ticks_diff(time.ticks_ms(), t) - 10
        if lag > worst_stall_ms:
            worst_stall_ms = lag


def build_ours():
    from loadpilot.modbus import pdu
    from loadpilot.modbus.image import RegisterImage
    img = RegisterImage(0, MAP_REGS, functions=(3, 4, 6, 16))
    for i in range(MAP_REGS):
        img.set_u16(i, i)
    router = pdu.Router()
    router.add(1, img)
    return router


def build_peer():
    from umodbus.tcp import ModbusTCP
    defs = {"HREGS": {}}
    for i in range(MAP_REGS):  # one definition per register, as a register map is written for it
        defs["HREGS"]["r%d" % i] = {"register": i, "val": i}
    mb = ModbusTCP()
    mb.setup_registers(registers=defs)
    return mb


async def main_ours(router):
    from loadpilot.modbus.image import RegisterImage
    from loadpilot.modbus.tcp_server import ModbusTcpServer

    marks = RegisterImage(MARK_BASE, 8, functions=(3,))
    marks.on_read = lambda addr, count: mark(addr - MARK_BASE) or 0
    router.add(2, marks)
    server = ModbusTcpServer(router, "127.0.0.1", port, max_clients=4)
    await server.start()
    asyncio.create_task(ticker())
    print("READY")
    while True:
        await asyncio.sleep_ms(1000)


async def main_peer(mb):
    mb.bind(local_ip="127.0.0.1", local_port=port)
    for k in range(7):
        mb.add_hreg(MARK_BASE + k, 0, on_get_cb=lambda reg_type, address, val: mark(address - MARK_BASE))
    asyncio.create_task(ticker())
    print("READY")
    while True:  # the library is synchronous: poll it from the loop, as its examples do in a while loop
        mb.process()
        await asyncio.sleep_ms(0)


# Import the library first: the figure is the heap the map itself holds, not the library's code.
if side == "ours":
    from loadpilot.modbus import image, pdu, tcp_server  # noqa: F401
else:
    from umodbus import tcp  # noqa: F401
gc.collect()
before = gc.mem_alloc()
the_map = build_ours() if side == "ours" else build_peer()
gc.collect()
print("MAP", gc.mem_alloc() - before)
asyncio.run(main_ours(the_map) if side == "ours" else main_peer(the_map))
