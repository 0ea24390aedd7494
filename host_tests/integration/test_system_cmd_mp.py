"""The System page's commands in the command layer (api/system_cmd.py, docs/webui.md) over HTTP /cnf on the
MicroPython binary: get_status, get_log (level filter, since), export_config without secrets, import_config all
or nothing, restart (the process ends and the next boot has every change), and the pages' 401 without a
browser dialog."""
import ast
import base64
import json
import os
import urllib.error
import urllib.request

import pytest

from firmware_proc import FIRMWARE, Firmware, free_port, wait_for

pytestmark = pytest.mark.mp

FACTORY = "JuiCeMeUP!"
MQTT_SECRET = "BrokerPw9Secret"
DEV_SECRET = "MeterPw8Secret"
DEVICES = [{"dev_id": "E2", "driver": "http_input", "address": "", "name": "Garage"},
           {"dev_id": "M2", "driver": "meter_mqtt", "address": "mqtt://u:%s@127.0.0.1:1" % DEV_SECRET,
            "definition": {"rtype": 2, "power_w": {"address": "m/p"}}}]


@pytest.fixture(scope="module")
def box():
    port = free_port()
    fw = Firmware(config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "http_port": port, "devices": DEVICES,
                          "mqtt_url": "mqtt://lp:%s@127.0.0.1:1" % MQTT_SECRET})
    fw.start()
    try:
        fw.wait_port(port)
        yield fw, port
    finally:
        fw.stop()


def call(port, query, body=None, pwd=FACTORY, xhr=False):
    h = {"Authorization": "Basic " + base64.b64encode(("operator:%s" % pwd).encode()).decode()} if pwd else {}
    if xhr:
        h["X-Requested-With"] = "XMLHttpRequest"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request("http://127.0.0.1:%d/cnf?%s" % (port, query), data=data, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def test_the_names_registered_by_the_app_are_the_modules_commands():
    def names(path, var):
        for node in ast.parse(open(os.path.join(FIRMWARE, "loadpilot", path)).read()).body:
            if isinstance(node, ast.Assign) and node.targets[0].id == var:
                return ast.literal_eval(node.value)
    assert names("app.py", "_SYSTEM_CMDS") == names("api/system_cmd.py", "NAMES")


def test_the_module_is_imported_with_the_first_system_command(box):
    fw, port = box
    assert "loadpilot.api.system_cmd" not in fw.ctl("modules")
    assert call(port, "cmd=get_log")[0] == 200
    assert "loadpilot.api.system_cmd" in fw.ctl("modules")


def test_get_status_has_what_the_system_page_and_dashboard_show(box):
    fw, port = box
    status, body, _ = call(port, "cmd=get_status")
    st = json.loads(body)
    assert status == 200 and st["version"] and st["uptime_ms"] > 0
    assert st["heap"]["min_free"] <= st["heap"]["free"] and st["loop"]["samples"] >= 0
    assert {"manager", "http", "looplag"} <= {t["name"] for t in st["tasks"]}
    assert [d["dev_id"] for d in st["devices"]] == ["E1", "E2", "M2"]
    assert "alloc_ma" in st["devices"][0] and "reason" in st["devices"][0]
    assert st["budget"]["max_total_current"] == 32000 and st["budget"]["max_total_cur_prc"] == 100
    assert st["totals"]["grid"] is None  # no grid meter: the figure cannot exist
    assert MQTT_SECRET not in body and DEV_SECRET not in body


def test_get_log_filters_by_level_and_line_number(box):
    fw, port = box
    st = json.loads(call(port, "cmd=get_log&level=INFO")[1])
    assert any("ready on board" in line[4] for line in st["lines"])
    n = st["count"]
    assert all(line[2] in ("INFO", "WARN", "ERROR") for line in st["lines"])
    errors = json.loads(call(port, "cmd=get_log&level=ERROR")[1])["lines"]
    assert all(line[2] == "ERROR" for line in errors)
    call(port, "cmd=set_params&free_charging=true")  # the authorizer starts and logs
    newer = json.loads(call(port, "cmd=get_log&since=%d" % n)[1])
    assert all(line[0] >= n for line in newer["lines"])
    status, body, _ = call(port, "cmd=get_log&level=LOUD")
    assert status == 400 and "level must be DEBUG, INFO, WARN or ERROR" in json.loads(body)["error"]


def test_export_leaves_secrets_out_and_import_is_all_or_nothing(box):
    fw, port = box
    status, body, _ = call(port, "cmd=export_config")
    assert status == 200 and MQTT_SECRET not in body and DEV_SECRET not in body and FACTORY not in body
    exp = json.loads(body)
    s = exp["settings"]
    assert "admin_pwd" not in s and "mqtt_url" not in s and "count_restart" not in s
    assert {"admin_pwd", "mqtt_url", "devices[1].address password"} <= set(exp["omitted"])
    assert s["max_total_current"] == 32000 and [d["dev_id"] for d in s["devices"]] == ["E2", "M2"]
    # re-importing the export as downloaded: the device address still holds the *** of its password
    status, body, _ = call(port, "cmd=import_config", exp)
    assert status == 400 and "devices holds a password left out of the export" in body
    del s["devices"]
    s["max_total_current"] = 40000
    status, body, _ = call(port, "cmd=import_config", exp)
    assert status == 200 and json.loads(body)["changed"] == ["max_total_current"]
    assert fw.ctl("config_get", key="max_total_current") == 40000
    for bad, why in (({"max_total_current": 50000, "reserve_current": -1}, "reserve_current: out of range"),
                     ({"admin_pwd": "abcdefgh1"}, "admin_pwd cannot be imported"),
                     ({"count_restart": 0}, "count_restart cannot be imported"),
                     ({"no_such": 1}, "unknown setting 'no_such'")):
        status, body, _ = call(port, "cmd=import_config", bad)
        assert status == 400 and why in json.loads(body)["error"], body
    assert fw.ctl("config_get", key="max_total_current") == 40000  # nothing of a refused import was taken


def test_a_page_request_gets_401_without_the_browser_dialog(box):
    fw, port = box
    status, _, headers = call(port, "cmd=get_status", pwd=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    status, _, headers = call(port, "cmd=get_status", pwd=None, xhr=True)
    assert status == 401 and headers["WWW-Authenticate"] is None


def test_restart_ends_the_process_and_the_next_boot_has_every_change(box):
    fw, port = box
    count = fw.ctl("config_get", key="count_restart")
    call(port, "cmd=set_params&title=Before%20restart")  # inside the commit delay: only the restart saves it
    status, body, _ = call(port, "cmd=restart")
    assert status == 200 and json.loads(body) == {"ok": True, "restart_in_ms": 500}
    assert wait_for(lambda: fw.proc.poll() is not None, 5) and fw.proc.returncode == 0
    again = Firmware(fs_dir=fw.fs_dir)
    again.start()
    try:
        assert again.ctl("config_get", key="title") == "Before restart"
        assert again.ctl("config_get", key="count_restart") == count + 1
    finally:
        again.stop()


def test_the_same_commands_over_mqtt_api():
    from mqtt_peers import Mosquitto, Observer
    from test_mqtt_topics import api, wait_subscribed
    broker = Mosquitto().start()
    fw = Firmware(config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "mqtt_api_url": "mqtt",
                          "mqtt_url": "mqtt://lp:%s@127.0.0.1:%d" % (MQTT_SECRET, broker.port)}).start()
    obs = Observer(broker.port)
    try:
        wait_subscribed(obs)
        st = api(obs, "cmd=get_status")
        assert st["version"] and "manager" in [t["name"] for t in st["tasks"]]
        assert any("ready on board" in line[4] for line in api(obs, "cmd=get_log&level=INFO")["lines"])
        exp = api(obs, "cmd=export_config")
        assert "mqtt_url" in exp["omitted"] and MQTT_SECRET not in json.dumps(exp)
        assert "level must be" in api(obs, "cmd=get_log&level=LOUD")["error"]
    finally:
        obs.close()
        fw.stop()
        broker.close()
