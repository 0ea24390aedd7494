"""A board without PSRAM (heap_kb <= codes.SMALL_HEAP_KB, like esp32_devkit) preallocates for a single box: the
MQTT client's receive buffer is 2 KB instead of 4, so a larger request is skipped and answered with its size,
and the get_dev_info document still arrives whole and valid, streamed one device at a time."""
import json
import os

import pytest

from firmware_proc import BOARDS, Firmware, free_port, free_ports
from mqtt_peers import Mosquitto, Observer
from test_inputs_mp import next_json

pytestmark = pytest.mark.mp
R = "cfos_mqtt"


def devkit_sized(tmp_path):
    """unix_sim with esp32_devkit's heap, socket and TLS figures."""
    with open(os.path.join(BOARDS, "unix_sim.json")) as f:
        b = json.load(f)
    with open(os.path.join(BOARDS, "esp32_devkit.json")) as f:
        d = json.load(f)
    b["name"] = "unix_sim_devkit"
    for k in ("heap_kb", "sockets", "tls_sessions"):
        b[k] = d[k]
    path = tmp_path / "board_devkit.json"
    path.write_text(json.dumps(b))
    return str(path)


def test_a_small_board_takes_2_kb_mqtt_messages_and_streams_dev_info(tmp_path):
    broker = Mosquitto().start()
    fs = tmp_path / "fs"
    fs.mkdir()
    cfg = {"modbus_tcp_port": free_port(), "pb_tcp_port": free_ports(3), "mqtt_url": "mqtt://127.0.0.1:%d"
           % broker.port, "mqtt_api_url": "mqtt", "mqtt_dev_info_url": "mqtt", "mqtt_publish_s": 1,
           "devices": [{"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "name": "Carport",
                        "publish_mqtt": True},
                       {"dev_id": "M1", "driver": "http_input", "address": "mqtt", "role": 3,
                        "publish_mqtt": True}]}
    fw = Firmware(board=devkit_sized(tmp_path), fs_dir=str(fs), config=cfg).start()
    obs = Observer(broker.port)
    try:
        assert fw.ctl("sockets")["need"] == 13  # the core profile within esp32_devkit's 16
        doc = next_json(obs, R + "/get/dev_info", 0, timeout=15)
        assert [d["dev_id"] for d in doc["devices"]] == ["E1", "M1"] and doc["devices"][0]["name"] == "Carport"
        e1 = next_json(obs, R + "/get/E1", 0)
        assert e1["dev_id"] == "E1" and e1["name"] == "Carport"
        n = len(obs.messages)
        big = json.dumps({"title": "x" * 2100})
        obs.publish(R + "/api/cmd=set_params", big, qos=1)
        res = next_json(obs, R + "/api_res", n)
        assert res["error"] == "request of %d bytes is larger than 2048 bytes" % len(big)
        assert fw.ctl("config_get", key="title") == "LoadPilot"
        n = len(obs.messages)
        obs.publish(R + "/api/cmd=get_dev_info", "", qos=1)  # the answer is streamed the same way
        res = next_json(obs, R + "/api_res", n, pred=lambda v: "devices" in v)
        assert [d["dev_id"] for d in res["devices"]] == ["E1", "M1"]
    finally:
        obs.close()
        fw.stop()
        broker.close()
