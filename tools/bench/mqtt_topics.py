"""MQTT topics benchmark: the whole firmware on the MicroPython unix binary, its SunSpec Modbus TCP server read
in a loop, while the MQTT API topics run against

1. a blackholed broker (accepts TCP, never answers) named by every topic group, and
2. mosquitto, with 25 HTTP-input wallboxes + 8 meters, get/dev_info published every second and a burst of
   set/<dev_id> messages and api requests.

Printed: the firmware's worst loop stall (status loop.worst_ms, measured from after boot) and the Modbus
reads answered, next to the bar from DESIGN.md (a broker must not stall the loop by more than 20 ms), and
the size of one dev_info document with its largest chunk.

    .venv/bin/python tools/bench/mqtt_topics.py
"""
import json
import os
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from firmware_proc import Firmware, free_port  # noqa: E402
from modbus_peers import read_pdu, request  # noqa: E402
from mqtt_peers import FakeBroker, Mosquitto, Observer  # noqa: E402

BAR_MS = 20
RUN_S = 8


def modbus_loop(port, seconds, during=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    reads = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pdu = request(s, 1, read_pdu(3, 40000, 2), tid=reads & 0xFFFF)
        assert pdu[2:6] == b"SunS", pdu
        reads += 1
        if during is not None:
            during(reads)
        time.sleep(0.005)
    s.close()
    return reads


def boot(config):
    port = free_port()
    cfg = {"modbus_tcp_port": port, "pb_tcp_port": 0}
    cfg.update(config)
    fw = Firmware(config=cfg).start()
    fw.wait_port(port)
    return fw, port


def blackholed():
    fb = FakeBroker(None)
    url = "mqtt://127.0.0.1:%d" % fb.port
    fw, port = boot({"mqtt_url": url, "mqtt_api_url": "mqtt", "mqtt_dev_info_url": "mqtt", "mqtt_log_url": "mqtt",
                     "mqtt_ta_log_url": "mqtt", "mqtt_publish_s": 1})
    try:
        time.sleep(0.5)
        fw.ctl("loop_reset")
        reads = modbus_loop(port, RUN_S)
        return fw.status()["loop"]["worst_ms"], reads, fb.accepts
    finally:
        fw.stop()
        fb.close()


def busy():
    broker = Mosquitto().start()
    url = "mqtt://127.0.0.1:%d" % broker.port
    devs = [{"dev_id": "E%d" % i, "driver": "http_input", "address": "mqtt", "name": "Wallbox %d" % i,
             "publish_mqtt": True} for i in range(1, 26)]
    devs += [{"dev_id": "M%d" % i, "driver": "http_input", "address": "mqtt"} for i in range(1, 9)]
    fw, port = boot({"mqtt_url": url, "mqtt_api_url": "mqtt", "mqtt_dev_info_url": "mqtt", "mqtt_log_url": "mqtt",
                     "mqtt_publish_s": 1, "mqtt_ha_discovery": True, "devices": devs, "lb_enabled": False})
    obs = Observer(broker.port, topics=("cfos_mqtt/get/dev_info",))
    try:
        obs.wait("cfos_mqtt/get/dev_info", timeout=15)
        fw.ctl("loop_reset")
        pub = Observer(broker.port, topics=("nothing",))

        def feed(n):
            if n % 10 == 0:
                i = n // 10 % 25 + 1
                pub.c.publish("cfos_mqtt/set/E%d" % i, json.dumps({"state": 3, "current": [16000, 16000, 16000],
                                                                    "total_energy": n}))
                pub.c.publish("cfos_mqtt/set/M%d" % (i % 8 + 1), json.dumps({"power_w": n, "import_wh": n}))
            if n % 50 == 0:
                pub.c.publish("cfos_mqtt/api/cmd=set_params", json.dumps({"max_total_cur_prc": n % 100}))

        reads = modbus_loop(port, RUN_S, feed)
        worst = fw.status()["loop"]["worst_ms"]
        pub.close()
        size = len(obs.wait("cfos_mqtt/get/dev_info")[1])
        return worst, reads, size
    finally:
        obs.close()
        fw.stop()
        broker.close()


def main():
    w1, r1, accepts = blackholed()
    print("blackholed broker (%d s, %d TCP accepts): loop worst %d ms (bar %d ms), %d Modbus reads answered"
          % (RUN_S, accepts, w1, BAR_MS, r1))
    w2, r2, size = busy()
    print("mosquitto, 25 wallboxes + 8 meters, dev_info every 1 s, set/api traffic (%d s): loop worst %d ms "
          "(bar %d ms), %d Modbus reads answered; dev_info %d bytes, streamed per device" % (RUN_S, w2, BAR_MS,
                                                                                          r2, size))


if __name__ == "__main__":
    main()
