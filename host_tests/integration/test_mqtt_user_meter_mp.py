"""A user-defined MQTT meter (rtype 2) on the MicroPython binary: its topics feed the site reading, bad
messages change nothing, and silence marks it com_err after its push timeout."""
import json
import time

import pytest

from firmware_proc import Firmware, free_port, wait_for
from mqtt_peers import Mosquitto, Observer

pytestmark = pytest.mark.mp

DEFINITION = {"rtype": 2, "mtype": 1,
              "power_w": {"address": "home/em/status", "type": "float", "query": "emeters[0].power"},
              "current_l1": {"address": "home/em/status", "type": "float", "query": "emeters[0].current",
                             "resolution": 1000},
              "import_wh": {"address": "home/em/energy", "type": "float", "query": "total", "resolution": 1000}}




def test_user_defined_meter_reads_its_topics(tmp_path):
    broker = Mosquitto().start()
    obs = Observer(broker.port)
    devices = [{"dev_id": "M1", "driver": "meter_mqtt", "address": "mqtt", "role": 3, "push_timeout": 3,
                "definition": DEFINITION}]
    fw = Firmware(fs_dir=str(tmp_path), config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0,
                                                "mqtt_url": "mqtt://127.0.0.1:%d" % broker.port,
                                                "devices": devices})
    try:
        fw.start()
        m1 = lambda: {d["dev_id"]: d for d in fw.status()["devices"]}["M1"]
        comm = lambda: {d["dev_id"]: d for d in fw.status()["device_comm"]}["M1"]

        def publish_until(pred):
            for _ in range(40):  # the firmware subscribes once connected; publish until it has taken one
                obs.publish("home/em/status", json.dumps({"emeters": [{"power": 2300.0, "current": 10.0}]}))
                obs.publish("home/em/energy", json.dumps({"total": 4.2}))
                if pred():
                    return True
                time.sleep(0.25)
            return False

        assert publish_until(lambda: m1()["power_w"] == 2300)
        r = m1()
        assert (r["current_ma"][0], r["import_wh"]) == (10000, 4200)
        obs.publish("home/em/status", "{not json")
        obs.publish("home/em/status", json.dumps({"emeters": [{"power": "lots"}]}))
        time.sleep(0.5)
        assert m1()["power_w"] == 2300
        assert wait_for(lambda: comm()["com_err"] is True, timeout=8)  # silent past its push timeout
        assert "M1: message on home/em/status refused: not valid JSON" in fw.read_output()
    finally:
        fw.stop()
        obs.close()
        broker.close()


def test_meters_added_at_run_time_and_sharing_a_topic(tmp_path):
    broker = Mosquitto().start()
    obs = Observer(broker.port)
    first = [{"dev_id": "M1", "driver": "meter_mqtt", "address": "mqtt", "role": 3, "definition": DEFINITION}]
    # a PV meter reading the same status message as M1, another element of it
    pv = {"rtype": 2, "power_w": {"address": "home/em/status", "type": "float", "query": "emeters[1].power"}}
    fw = Firmware(fs_dir=str(tmp_path), config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0,
                                                "mqtt_url": "mqtt://127.0.0.1:%d" % broker.port,
                                                "devices": first})
    try:
        fw.start()
        # the meters' power (the board's own charge point is in the Site as E1 too)
        power = lambda: dict((d["dev_id"], d["power_w"]) for d in fw.status()["devices"] if d["dev_id"][0] == "M")

        def publish_until(pred, m1_w, pv_w):
            for _ in range(40):  # subscriptions follow the device list: publish until they have taken one
                obs.publish("home/em/status", json.dumps({"emeters": [{"power": m1_w, "current": 10.0},
                                                                      {"power": pv_w}]}))
                if pred():
                    return True
                time.sleep(0.25)
            return False

        assert publish_until(lambda: power().get("M1") == 2300, 2300.0, -900.0), power()
        fw.ctl("config_set", key="devices", value=first + [{"dev_id": "M2", "driver": "meter_mqtt",
                                                            "address": "mqtt", "role": 2, "definition": pv}])
        assert publish_until(lambda: power() == {"M1": 1500, "M2": -900}, 1500.0, -900.0), power()
        fw.ctl("config_set", key="devices", value=[dict(first[0], dev_id="M3")])  # M1, M2 leave; M3 reads
        assert publish_until(lambda: power() == {"M3": 700}, 700.0, -100.0), power()
    finally:
        fw.stop()
        obs.close()
        broker.close()
