# MicroPython side of the proxy test: our Modbus TCP server on 127.0.0.1:ARGS["port"] with units 1, 2 and 5
# proxied to the RS485 bus rs485_1 (a pty) through our RTU master, and a local unit 100 served from a
# register image (registers 0..9 = 100..109), so proxied and local units share one server.
import asyncio

from loadpilot import board as boardmod
from loadpilot.hal import unix
from loadpilot.modbus import pdu, proxy, rtu_master, serial_settings
from loadpilot.modbus.image import RegisterImage
from loadpilot.modbus.tcp_server import ModbusTcpServer

settings = serial_settings.parse("COM1,9600,8,n,1")
hal = unix.Hal(boardmod.load(BOARD))
uart = hal.uart(settings.board_uart(), *settings.uart_args())
master = rtu_master.RtuMaster(uart, settings, timeout_ms=ARGS.get("timeout_ms", 300))
router = pdu.Router()
proxy.install(router, master, [1, 2, 5])
local = RegisterImage(0, 10)
for a in range(10):
    local.buf[2 * a + 1] = 100 + a
router.add(100, local)


async def main():
    server = ModbusTcpServer(router, host="127.0.0.1", port=ARGS["port"])
    await server.start()
    print("proxy ready")
    while True:
        await asyncio.sleep_ms(1000)


asyncio.run(main())
