# Heap of one MQTT topics round (mqtt/service.py _publish_info: get/dev_info, get/params, get/<dev_id>, and HA
# discovery after a connect), full profile: 25 wallboxes + 8 meters, HA discovery on. Runs on the MicroPython
# binary (argv: firmware dir, a scratch dir for the config store). The real Client publishes into a stream that
# takes every byte and never acknowledges (a slow broker: QoS 1 messages stay in its window until acked).
# Prints two figures per round:
#   peak: the highest live heap above the idle baseline, sampled (after gc.collect) at every socket write;
#   alloc: every byte allocated by the round, with the GC off (the churn that fragments the heap).
import asyncio
import gc
import sys

sys.path.insert(0, sys.argv[1])
from loadpilot.api.commands import Commands  # noqa: E402
from loadpilot.config.store import Store  # noqa: E402
from loadpilot.log import Log  # noqa: E402
from loadpilot.mqtt import client as client_mod  # noqa: E402
from loadpilot.mqtt.service import MqttApiService  # noqa: E402
from loadpilot.site import Site  # noqa: E402

N_BOXES = 25
N_METERS = 8


class Sink:
    """A socket stream that takes everything; optionally samples the live heap at every write."""

    def __init__(self):
        self.bytes = 0
        self.writes = 0
        self.sample = False
        self.peak = 0
        self.out_buf = b""  # asyncio.Stream's: nothing left over, the socket took every write

    def write(self, buf):
        self.bytes += len(buf)
        self.writes += 1
        if self.sample:
            gc.collect()
            a = gc.mem_alloc()
            if a > self.peak:
                self.peak = a

    async def drain(self):
        pass


def build():
    log = Log()
    store = Store(sys.argv[2], log)
    devs = [{"dev_id": "E%d" % i, "driver": "http_input", "address": "mqtt", "name": "Wallbox %d" % i,
             "publish_mqtt": True} for i in range(1, N_BOXES + 1)]
    devs += [{"dev_id": "M%d" % i, "driver": "http_input", "address": "mqtt", "name": "Meter %d" % i}
             for i in range(1, N_METERS + 1)]
    store.set_many({"mqtt_url": "mqtt://127.0.0.1:1883", "mqtt_api_url": "mqtt", "mqtt_dev_info_url": "mqtt",
                    "mqtt_ha_discovery": True, "devices": devs})
    site = Site()
    site.configure([d["dev_id"] for d in devs])
    site.push(dict((d["dev_id"], {"current_ma": [16000, 15500, 15900], "voltage_v": [231, 229, 230],
                                  "power_w": 11000, "import_wh": 12345678, "export_wh": 4321})
                   for d in devs), 0)
    commands = Commands(store, log)
    svc = MqttApiService.create(store, commands, site, log, "0123456789")
    c = svc.info
    c.state = client_mod.CONNECTED
    c.connects = 1
    c._stream = Sink()
    return svc, c


def one_round(svc, c, discovery, sample):
    c._outbox.clear()  # the previous round was acknowledged
    c._order.clear()
    if discovery:
        svc._ha_connects = -1
    sink = c._stream
    sink.bytes = 0
    sink.writes = 0
    sink.sample = sample
    gc.collect()
    base = gc.mem_alloc()
    sink.peak = base
    if not sample:
        gc.disable()
    asyncio.run(svc._publish_info())
    after = gc.mem_alloc()
    gc.enable()
    return (sink.peak - base) if sample else (after - base), sink.bytes, sink.writes


def main():
    svc, c = build()
    one_round(svc, c, True, False)  # warm up: interned strings, lazily made objects
    for discovery in (False, True):
        peak, nbytes, writes = one_round(svc, c, discovery, True)
        alloc, _, _ = one_round(svc, c, discovery, False)
        print("ROUND %s peak=%d alloc=%d bytes=%d writes=%d" % ("discovery" if discovery else "plain", peak, alloc,
                                                               nbytes, writes))


main()
