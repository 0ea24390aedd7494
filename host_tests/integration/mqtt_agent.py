# Runs on the MicroPython binary: one loadpilot.mqtt Client driven by JSON lines on stdin, reporting events as
# JSON lines on stdout. A 10 ms ticker beside it records the worst loop stall. Used by the integration tests
# and tools/bench/mqtt.py. argv[1] is a JSON object: {"firmware": path, "url": ..., "client": {...kwargs}}.
import sys
import json

cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["firmware"])

import asyncio  # noqa: E402
import time  # noqa: E402
from loadpilot.mqtt.client import Client  # noqa: E402
from loadpilot.mqtt.dedup import Dedup  # noqa: E402

worst = [0]


def emit(**kw):
    print(json.dumps(kw))


class Log:
    def _w(self, level, tag, msg):
        emit(ev="log", level=level, msg=msg)

    def info(self, tag, msg):
        self._w("INFO", tag, msg)

    def warn(self, tag, msg):
        self._w("WARN", tag, msg)

    def error(self, tag, msg):
        self._w("ERROR", tag, msg)


async def ticker():
    await asyncio.sleep_ms(50)  # let startup imports settle
    while True:
        t = time.ticks_ms()
        await asyncio.sleep_ms(10)
        lag = time.ticks_diff(time.ticks_ms(), t) - 10
        if lag > worst[0]:
            worst[0] = lag


def view(c):
    v = c.view()
    v["stall_ms"] = worst[0]
    v["dropped_oversize"] = c.dropped_oversize
    return v


async def watch(c):
    last = None
    while True:
        s = (c.state, c.connects, c.last_error)
        if s != last:
            last = s
            emit(ev="state", state=c.state, connects=c.connects, error=c.last_error)
        await asyncio.sleep_ms(20)


async def commands(c, dedup):
    rd = asyncio.StreamReader(sys.stdin)
    while True:
        line = await rd.readline()
        if not line:
            return
        req = json.loads(line)
        op = req["op"]
        if op == "pub":
            ok = await c.publish(req["topic"], req["payload"], req.get("qos", 0), req.get("retain", False))
            emit(ev="pub", ok=ok, pending=c.pending())
        elif op == "parts":
            chunks = req["chunks"]
            ok = await c.publish_parts(req["topic"], sum(len(x) for x in chunks), lambda: iter(chunks),
                                       req.get("qos", 0))
            emit(ev="pub", ok=ok, pending=c.pending())
        elif op == "sub":
            c.subscribe(req["topic"], req.get("qos", 0))
            emit(ev="sub")
        elif op == "view":
            emit(ev="view", **view(c))
        elif op == "reset_stall":
            worst[0] = 0
            emit(ev="reset")
        elif op == "disconnect":
            await c.disconnect()
            emit(ev="bye")
            return


async def main():
    dedup = Dedup()
    args = cfg.get("client", {})
    if "cafile" in cfg:
        args["cadata"] = open(cfg["cafile"], "rb").read()

    def on_message(m):
        emit(ev="msg", topic=m.topic, payload=m.payload.decode(), qos=m.qos, pid=m.pid, dup=m.dup,
             execute=not dedup.is_duplicate(m))

    c = Client(cfg["url"], log=Log(), on_message=on_message, **args)
    asyncio.create_task(ticker())
    asyncio.create_task(watch(c))
    asyncio.create_task(c.run())
    emit(ev="ready")
    await commands(c, dedup)


asyncio.run(main())
