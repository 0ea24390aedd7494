"""The firmware with its config store: installer import, persistence across restarts, the flusher task,
flush on a planned stop, and a clear log line for a bad config.json."""
import json
import os
import signal
import time

import pytest

from firmware_proc import Firmware

pytestmark = pytest.mark.mp

SECRET = "hunter2-mqtt"


def drop_config(fs_dir, obj):
    with open(os.path.join(str(fs_dir), "config.json"), "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def wait_clean(fw, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = fw.ctl("config_get")
        if not st["dirty"]:
            return st
        time.sleep(0.2)
    raise AssertionError("change never committed: %r" % st)


def test_config_json_is_imported_and_changes_survive_restarts(tmp_path):
    drop_config(tmp_path, {"title": "Carport", "max_total_current": 25000, "commit_delay_s": 1,
                           "mqtt_enabled": True, "mqtt_url": "mqtt://lp:%s@broker.lan" % SECRET,
                           "devices": [{"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse"},
                                       {"dev_id": "M1", "driver": "meter_sdm630", "role": 3,
                                        "address": "COM1,9600,8,n,1"}]})
    with Firmware(fs_dir=str(tmp_path)) as fw:
        v = fw.ctl("config_get")["values"]
        assert v["title"] == "Carport" and v["max_total_current"] == 25000
        assert v["mqtt_url"] == "mqtt://lp:***@broker.lan" and v["devices"][1]["role"] == 3
        # a change through the control channel reaches flash through the flusher task (1 s delay here)
        assert fw.ctl("config_set", key="reserve_current", value=3000) == ["reserve_current"]
        assert wait_clean(fw)["saves"] == 2
        with pytest.raises(RuntimeError) as e:
            fw.ctl("config_set", key="modbus_id", value=300)
        assert "modbus_id: out of range 1..246" in str(e.value)
        with pytest.raises(RuntimeError) as e:
            fw.ctl("config_set", key="max_total_cur_prc", value=50)
        assert "volatile" in str(e.value)
    out = fw.read_output()
    assert "config.json imported (6 settings: commit_delay_s, devices, max_total_current, mqtt_enabled, " \
           "mqtt_url, title); file kept as config.json.imported" in out, out
    assert SECRET not in out
    files = sorted(os.listdir(str(tmp_path)))
    assert "config.json" not in files and "config.json.imported" in files

    with Firmware(fs_dir=str(tmp_path)) as fw:
        v = fw.ctl("config_get")["values"]
        assert (v["title"], v["max_total_current"], v["reserve_current"]) == ("Carport", 25000, 3000)
        # a planned stop (Ctrl-C) flushes a change still inside the commit delay
        fw.ctl("config_set", values={"commit_delay_s": 3600, "title": "Garage"})
        fw.proc.send_signal(signal.SIGINT)
        fw.proc.wait(10)
    assert "stopped" in fw.read_output()

    with Firmware(fs_dir=str(tmp_path)) as fw:
        v = fw.ctl("config_get")["values"]
        assert (v["title"], v["commit_delay_s"]) == ("Garage", 3600)
        assert fw.ctl("config_get", key="mqtt_url") == "mqtt://lp:***@broker.lan"
    assert SECRET not in fw.read_output()


def test_bad_config_json_names_the_field_and_keeps_defaults(tmp_path):
    drop_config(tmp_path, {"title": "Carport", "devices": [{"dev_id": "M1", "driver": "meter_x", "role": 9}]})
    with Firmware(fs_dir=str(tmp_path)) as fw:
        assert fw.ctl("config_get", key="title") == "LoadPilot"
    out = fw.read_output()
    assert "config.json rejected: devices[0].role: out of range 0..6, got 9; keeping defaults; " \
           "file kept as config.json.bad" in out, out
    assert sorted(os.listdir(str(tmp_path))) == ["config.json.bad"]


def test_a_full_site_configuration_is_imported_kept_across_restarts_and_a_larger_one_refused(tmp_path):
    from firmware_proc import free_port
    from site_config import definition, full_site
    closed = free_port()  # wallboxes and brokers that refuse connections, on loopback
    site = full_site(net="127.0.0", box_port=closed, broker_port=closed)
    site.update(modbus_tcp_port=free_port(), pb_tcp_port=0, commit_delay_s=1)
    drop_config(tmp_path, json.dumps(site, indent=1))
    with Firmware(fs_dir=str(tmp_path)) as fw:
        v = fw.ctl("config_get")["values"]
        assert len(v["devices"]) == 50 and len(v["cm_vars"]) == 32 and v["title"] == site["title"]
        bigger = json.loads(json.dumps(v["devices"]))
        for d in bigger[25:]:
            d.update(driver="meter_mqtt", address="mqtt", definition=definition(int(d["dev_id"][1:])), role=0)
            d.pop("id", None)
        with pytest.raises(RuntimeError) as e:
            fw.ctl("config_set", key="devices", value=bigger)
        assert "devices: the configuration would take" in str(e.value)
        assert "more than the 65536 the store keeps" in str(e.value)
        assert fw.ctl("config_get")["values"] == v  # nothing changed
        wait_clean(fw)  # the boot's restart counter, saved with the full site
    out = fw.read_output()
    assert "config.json imported (11 settings: " in out, out
    record = open(os.path.join(str(tmp_path), "config.json.imported")).read()
    for secret in ("site-secret-0", "admin-secret-0", "pw-22"):
        assert secret not in out and secret not in record
    assert sorted(os.listdir(str(tmp_path))) == ["config.json.imported", "lpconfig.a", "lpconfig.b"]

    with Firmware(fs_dir=str(tmp_path)) as fw:
        again = fw.ctl("config_get")["values"]
    assert again == dict(v, count_restart=v["count_restart"] + 1)
    assert "loaded seq 2 from lpconfig.b (" in fw.read_output()


def test_a_damaged_newest_slot_boots_the_other_one_and_the_next_save_goes_over_the_damage(tmp_path):
    drop_config(tmp_path, {"title": "first", "commit_delay_s": 1, "pb_tcp_port": 0, "modbus_tcp_port": 0})
    with Firmware(fs_dir=str(tmp_path)) as fw:
        fw.ctl("config_set", key="title", value="second")
        wait_clean(fw)
    a, b = (os.path.join(str(tmp_path), n) for n in ("lpconfig.a", "lpconfig.b"))
    data = open(b, "rb").read()
    assert data.startswith(b"LPCFG2 v=2 seq=2 ") and b'"second"' in data
    with open(b, "wb") as f:
        f.write(data.replace(b" seq=2", b" req=2", 1))  # one bit: s (0x73) -> r (0x72)
    intact = open(a, "rb").read()
    with Firmware(fs_dir=str(tmp_path)) as fw:
        assert fw.ctl("config_get", key="title") == "first"
        fw.ctl("config_set", key="title", value="third")
        wait_clean(fw)
    out = fw.read_output()
    assert "lpconfig.b ignored: bad header: unexpected 'req=2'; using lpconfig.a (seq 1)" in out, out
    assert open(a, "rb").read() == intact and b'"third"' in open(b, "rb").read()
    with Firmware(fs_dir=str(tmp_path)) as fw:
        assert fw.ctl("config_get", key="title") == "third"
    assert "ignored" not in fw.read_output()
