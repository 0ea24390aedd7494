# MicroPython side of the device-layer test: the firmware's DeviceLayer as RTU master on rs485_1 (a pty) and
# Modbus TCP client, fed from ARGS["devices"]; set-points from ARGS["setpoints"]. Prints the devices view and
# the bus figures as one JSON line every ARGS["every_ms"]. With ARGS["proxy"] = [setting, port] the TCP-to-RTU
# proxy serves on 127.0.0.1:port through the layer's master (tools/bench/bus.py).
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
proxy = None
if ARGS.get("proxy"):  # ARGS["proxy"] = [modbus_proxy setting, TCP port]: the app's proxy service on this layer
    from loadpilot.config import schema
    from loadpilot.log import Log
    from loadpilot.modbus import pdu
    from loadpilot.modbus.proxy_service import ProxyService

    class _Config:
        values = schema.defaults()
        values["modbus_proxy"] = ARGS["proxy"][0]

        def get(self, key):
            return self.values[key]

    proxy = ProxyService(_Config(), pdu.Router(), lambda: layer, Log())


async def main():
    for name, fn in layer.tasks():
        asyncio.create_task(fn())
    if proxy is not None:
        from loadpilot.modbus.tcp_server import ModbusTcpServer
        await ModbusTcpServer(proxy.router, host="127.0.0.1", port=ARGS["proxy"][1]).start()
    while True:
        await asyncio.sleep_ms(ARGS.get("every_ms", 300))
        v = {"devices": layer.view(), "buses": layer.bus_view()}
        if proxy is not None:
            v["proxy"] = proxy.view()
        print("VIEW " + json.dumps(v))


asyncio.run(main())
