# Runs on the MicroPython binary: our Modbus TCP server with test images, for the integration tests.
# argv: port [max_clients [idle_timeout_ms [frame_timeout_ms]]]. Prints "READY <port>" once listening.
#   unit 1:   RegisterImage(0, 1100), register i holds i; 1000..1009 read-only; FC 3/4/6/16
#   unit 2:   RegisterImage(40000, 100), FC 3/6/16 only; writes of values > 1000 refused with exception 03
#   unit 3:   an async handler (like the RTU proxy) that waits 20 ms, then serves unit 1's image;
#             address 0xFFFF raises inside the handler
#   unit 247: diagnostics measured inside the server: reg 0-1 gc.mem_alloc() now, reg 2-3 gc.mem_alloc()
#             after gc.collect(), reg 4-5 requests served, reg 6 clients connected, reg 7 rejected clients,
#             reg 8 evicted clients, reg 9 clients closed for an overdue frame
import asyncio
import gc
import sys

from loadpilot.modbus import pdu
from loadpilot.modbus.image import RegisterImage
from loadpilot.modbus.tcp_server import ModbusTcpServer

port = int(sys.argv[1])
max_clients = int(sys.argv[2]) if len(sys.argv) > 2 else 4
idle_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 60000
frame_ms = int(sys.argv[4]) if len(sys.argv) > 4 else 1000

main_img = RegisterImage(0, 1100)
for i in range(1100):
    main_img.set_u16(i, i)
main_img.set_read_only(1000, 10)


def limit_1000(addr, count, data, off):
    for i in range(count):
        if ((data[off + 2 * i] << 8) | data[off + 2 * i + 1]) > 1000:
            return pdu.ILLEGAL_VALUE
    return 0


small_img = RegisterImage(40000, 100, functions=(3, 6, 16), on_write=limit_1000)
diag = RegisterImage(0, 10, functions=(3, 4))
server = None


def diag_read(addr, count):
    if addr <= 2 < addr + count:
        gc.collect()
        diag.set_u32(2, gc.mem_alloc())
    diag.set_u32(0, gc.mem_alloc())
    diag.set_u32(4, server.requests)
    diag.set_u16(6, server.clients())
    diag.set_u16(7, server.rejected)
    diag.set_u16(8, server.evicted)
    diag.set_u16(9, server.slow_closed)
    return 0


diag.on_read = diag_read


class SlowAsyncHandler:
    is_async = True

    async def handle(self, req, req_len, out):
        await asyncio.sleep_ms(20)
        if req_len >= 3 and req[1] == 0xFF and req[2] == 0xFF:
            raise RuntimeError("device behind the gateway failed")
        return pdu.serve(main_img, req, req_len, out)

router = pdu.Router()
router.add(1, main_img)
router.add(2, small_img)
router.add(3, SlowAsyncHandler())
router.add(247, diag)
server = ModbusTcpServer(router, "127.0.0.1", port, max_clients=max_clients, idle_timeout_ms=idle_ms,
                         frame_timeout_ms=frame_ms)


async def main():
    await server.start()
    print("READY", port)
    while True:
        await asyncio.sleep_ms(1000)


asyncio.run(main())
