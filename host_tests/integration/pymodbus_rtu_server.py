"""A pymodbus RTU server on a pty, the peer for our RTU master and the proxy. Usage: pty unit[,unit...]
Holding register a of unit u starts as (u * 1000 + a) & 0xFFFF, input register a as holding + 1."""
import asyncio
import logging
import sys

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusSerialServer

SIZE = 300


def device(unit):
    hr = [(unit * 1000 + a) & 0xFFFF for a in range(SIZE)]
    ir = [(v + 1) & 0xFFFF for v in hr]
    # pymodbus' device context looks up address + 1, so the blocks start at 1 for PDU address 0
    return ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, hr), ir=ModbusSequentialDataBlock(1, ir))


async def main():
    logging.basicConfig(level=logging.CRITICAL)
    port = sys.argv[1]
    units = [int(u) for u in sys.argv[2].split(",")]
    ctx = ModbusServerContext(devices={u: device(u) for u in units}, single=False)

    def quiet_for_strangers(sending, data):
        # pymodbus 3.16 answers an unknown unit id with exception 04; a real bus has no such node: silence
        if sending and data and data[0] not in units:
            return b""
        return data

    server = ModbusSerialServer(ctx, port=port, baudrate=int(sys.argv[3]) if len(sys.argv) > 3 else 9600,
                                broadcast_enable=True, ignore_missing_devices=True,
                                trace_packet=quiet_for_strangers)
    print("pymodbus rtu server on", port, flush=True)
    await server.serve_forever()


asyncio.run(main())
