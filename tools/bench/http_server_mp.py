# Benchmark server, run on the MicroPython binary by tools/bench/http_api.py: the real command layer (store,
# commands, Site, get_dev_info view) with 25 HTTP-input wallboxes and 8 meters, served by LoadPilot's HTTP
# server ("ours") or by microdot 2.7.0 ("microdot", same command layer, same answers), beside a 10 ms ticker
# that records the worst loop stall. argv: ours|microdot port fs_dir.
#
# GET /mark/<n> is answered by the side itself (not counted): 0 gc.collect(), 1 record gc.mem_alloc(),
# 3 reset the worst stall, 4 record it, 5 print the records, 6 forget them.
import asyncio
import gc
import sys
import time

side = sys.argv[1]
port = int(sys.argv[2])
fs_dir = sys.argv[3]

records = []
worst = [0]


def mark(which):
    if which == 0:
        gc.collect()
    elif which == 1:
        records.append(gc.mem_alloc())
    elif which == 3:
        worst[0] = 0
    elif which == 4:
        records.append(worst[0])
    elif which == 5:
        print("MARKS", " ".join(str(r) for r in records))
    elif which == 6:
        records.clear()


async def ticker():
    while True:
        t = time.ticks_ms()
        await asyncio.sleep_ms(10)
        lag = time.ticks_diff(time.ticks_ms(), t) - 10
        if lag > worst[0]:
            worst[0] = lag


def command_layer():
    from loadpilot.api.commands import Commands
    from loadpilot.config import schema
    from loadpilot.config.store import Store
    from loadpilot.devices.checks import check_devices
    from loadpilot.log import Log
    from loadpilot.site import Site
    schema.on_new("devices", check_devices)
    log = Log()
    log.console_level = 99  # quiet
    store = Store(fs_dir, log)
    devices = [{"dev_id": "E%d" % i, "driver": "http_input", "address": "", "name": "Box %d" % i}
               for i in range(1, 26)]
    devices += [{"dev_id": "M%d" % i, "driver": "http_input", "address": "", "role": 1} for i in range(1, 9)]
    store.set_many({"devices": devices, "cm_vars": [{"name": "x", "expr": "1"}], "http_port": port})
    site = Site()
    site.configure([d["dev_id"] for d in devices])
    commands = Commands(store, log)
    commands.site = site
    return store, commands, site, log


async def main():
    store, commands, site, log = command_layer()
    asyncio.create_task(ticker())
    gc.collect()
    before = gc.mem_alloc()
    if side == "ours":
        from loadpilot.http.service import HttpService
        svc = HttpService(store, commands, site, log, host="127.0.0.1", port=port, max_clients=2, max_pending=1)
        inner = svc.handle

        async def handle(req, resp, slot):
            if req.path.startswith("/mark/"):
                mark(int(req.path[6:]))
                await resp.send(200, b"1")
                return
            await inner(req, resp, slot)

        svc.server.handler = handle
        gc.collect()
        print("HEAP", gc.mem_alloc() - before)  # imports + service with its slots (before any request)
        await svc.server.start()
    else:
        import json
        from microdot import Microdot
        from loadpilot.api.dev_info import DevInfo
        commands.dev_info = DevInfo(store, site, commands)
        app = Microdot()

        @app.route("/mark/<int:n>")
        async def _mark(request, n):
            mark(n)
            return "1"

        @app.route("/cnf", methods=["GET", "POST"])
        async def cnf(request):
            q = request.query_string
            if q == "cmd=get_dev_info":
                return commands.dev_info.whole()
            return json.dumps(commands.execute(q, request.body or None)), 200, {"Content-Type": "application/json"}

        gc.collect()
        print("HEAP", gc.mem_alloc() - before)
        asyncio.create_task(app.start_server(host="127.0.0.1", port=port))
    print("READY")
    while True:
        await asyncio.sleep_ms(1000)


asyncio.run(main())
