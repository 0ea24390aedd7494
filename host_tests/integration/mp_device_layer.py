# MicroPython side of the device-layer test: the firmware's DeviceLayer as RTU master on rs485_1 (a pty) and
# Modbus TCP client, fed from ARGS["devices"]; set-points from ARGS["setpoints"]. Prints the devices view and
# the bus figures as one JSON line every ARGS["every_ms"].
import asyncio
import json

from loadpilot import board as boardmod
from loadpilot.devices import layer as layer_mod
from loadpilot.hal import unix
from loadpilot.site import Site

hal = unix.Hal(boardmod.load(BOARD))
site = Site()
devs = ARGS["devices"]
site.configure([d["dev_id"] for d in devs])
setpoints = {}
for k, v in ARGS.get("setpoints", {}).items():
    setpoints[k] = tuple(v)
layer = layer_mod.build(devs, site, setpoints, hal)


async def main():
    for name, fn in layer.tasks():
        asyncio.create_task(fn())
    while True:
        await asyncio.sleep_ms(ARGS.get("every_ms", 300))
        print("VIEW " + json.dumps({"devices": layer.view(), "buses": layer.bus_view()}))


asyncio.run(main())
