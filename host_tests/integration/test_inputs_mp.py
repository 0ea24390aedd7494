"""Input hardening on the MicroPython binary with mosquitto under password (issue 12 defects 5-7, issue 11 ctl):
- deep, huge and malformed JSON on api/, set/<dev_id>, ctl and a user meter topic gets a clear answer;
- ctl takes the seed's own text (bare keys) and strict JSON, and logs anything else;
- set-points are checked against the configured wallboxes and their ranges;
- with a secret in every secret field and in device addresses, no byte the firmware emits carries one: every
  MQTT topic it publishes (api_res, set_res, get/*, log, HA discovery), its stdout, and the Modbus string
  registers of the SunSpec maps read with pymodbus."""
import json
import time

import pytest
from pymodbus.client import ModbusTcpClient

from firmware_proc import Firmware, free_port
from firmware_proc import wait_until as wait_for
from mqtt_peers import Mosquitto, Observer
from test_mqtt_topics import pump

pytestmark = pytest.mark.mp

R = "cfos_mqtt"
# one password per secret field, each distinct, so a leak names its source
S = {"default": "DfltPw9q", "info": "InfoPw7x", "log": "LogPw3zk", "dev": "DevPw5ty", "meter": "MtrPw2vb",
     "admin": "AdmPw8rs", "title": "TtlPw4", "var": "VarPw6h", "refused": "RefPw1mn", "query": "QryPw0jd"}
OBS_PW = "observer-only"
METER_TOPIC = "home/meter3"
# seeds/mqtt-api.md, "Control wallboxes via MQTT", character for character
SEED_CTL = '{"E1":\n{cur: 8000, ena: true, wke: true},\n"E2":\n{cur: 10000, phs: 3}}'


@pytest.fixture(scope="module")
def env():
    broker = Mosquitto(passwords={"lp": S["default"], "info": S["info"], "log": S["log"], "dev": S["dev"],
                                  "meter": S["meter"], "obs": OBS_PW}).start()
    url = lambda user: "mqtt://%s:%s@127.0.0.1:%d" % (user, S[user if user != "lp" else "default"], broker.port)
    devices = [
        {"dev_id": "E2", "driver": "http_input", "address": url("dev"), "name": "Garage", "publish_mqtt": True,
         "publish_modbus": True},
        {"dev_id": "M3", "driver": "meter_mqtt", "address": url("meter"), "name": "mqtt://n:%s@h" % S["title"],
         "publish_modbus": True, "definition": {"rtype": 2, "power_w": {"address": METER_TOPIC,
                                                                         "query": "power_w"}}},
    ]
    sunspec_port = free_port()
    fw = Firmware(config={
        "modbus_tcp_port": sunspec_port, "pb_tcp_port": 0, "mqtt_url": url("lp"), "mqtt_api_url": "mqtt",
        "mqtt_dev_info_url": url("info"), "mqtt_log_url": url("log"), "mqtt_ta_log_url": "mqtt",
        "admin_pwd": S["admin"], "title": "mqtt://t:%s@h" % S["title"], "mqtt_ctl_enabled": True,
        "mqtt_ha_discovery": True, "mqtt_publish_s": 1, "lb_enabled": False, "devices": devices,
        "cm_vars": [{"name": "x", "expr": "1"}, {"name": "mqtt://v:%s@h" % S["var"], "expr": "2"}]}).start()
    obs = Observer(broker.port, user="obs", password=OBS_PW)
    try:
        wait_for(lambda: _answers(obs, "cmd=get_cm_vars", timeout=0.5), timeout=15)
        yield fw, obs, sunspec_port
    finally:
        obs.close()
        fw.stop()
        broker.close()


def next_json(obs, topic, after, pred=lambda v: True, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        for m in obs.messages[after:]:
            if m[0] == topic and pred(json.loads(m[1])):
                return json.loads(m[1])
        if time.monotonic() > deadline:
            raise AssertionError("no matching %s: %r" % (topic, [m for m in obs.messages[after:]
                                                                 if m[0] == topic][-3:]))
        pump(obs)


def api(obs, query, body="", timeout=10):
    pump(obs, 0)
    n = len(obs.messages)
    obs.publish("%s/api/%s" % (R, query), body, qos=1)
    return next_json(obs, R + "/api_res", n, timeout=timeout)


def _answers(obs, query, timeout):
    try:
        return api(obs, query, timeout=timeout)
    except AssertionError:
        return None


def logged(obs, needle, timeout=10):
    """The first log-topic line holding needle."""
    def find():
        pump(obs)
        for m in obs.messages:
            if m[0] == R + "/log" and needle in json.loads(m[1])["msg"]:
                return json.loads(m[1])["msg"]
    return wait_for(find, timeout)


def test_deep_large_and_malformed_json_gets_an_answer(env):
    fw, obs, _ = env
    deep = "[" * 1900 + "]" * 1900
    ans = api(obs, "cmd=set_params", deep)
    assert ans == {"error": "set_params: body: JSON nested deeper than 16 levels", "query": "cmd=set_params"}
    ans = api(obs, "cmd=set_params", '{"max_total_cur_prc": ' + "9" * 40 + "}")
    assert "number longer than 32" in ans["error"]
    ans = api(obs, "cmd=set_params", "{" + ",".join('"k%d":1' % i for i in range(300)) + "}")
    assert "more than 256 keys" in ans["error"]
    # larger than the MQTT client's 4,096-byte packet buffer: skipped, and still answered
    big = json.dumps({"title": "x" * 5000})
    assert api(obs, "cmd=set_params", big)["error"] == "request of %d bytes is larger than 4096 bytes" % len(big)
    # set/<wallbox>: the refusal comes back on set_res (docs/mqtt-topics.md), and is logged
    for body, msg in ((deep, "JSON nested deeper than 16 levels"), ("{oops", "not valid JSON"), (big, "larger than"),
                      (json.dumps({"state": 9}), "state")):
        pump(obs, 0)
        n = len(obs.messages)
        obs.publish(R + "/set/E2", body)
        res = next_json(obs, R + "/set_res/E2", n)
        assert res["dev_id"] == "E2" and msg in res["error"]
    assert logged(obs, "set/E2 refused, nothing changed: payload: JSON nested deeper than 16 levels")
    # a user-defined meter's topic: logged, the reading stays
    obs.publish(METER_TOPIC, json.dumps({"power_w": 1234}))
    wait_for(lambda: m3_power(obs) == 1234)
    obs.publish(METER_TOPIC, '{"power_w": ' + "[" * 1900)
    assert logged(obs, "M3: message on %s refused: JSON nested deeper than 16 levels" % METER_TOPIC)
    assert m3_power(obs) == 1234
    assert fw.proc.poll() is None


def m3_power(obs):
    return [d for d in api(obs, "cmd=get_dev_info")["devices"] if d["dev_id"] == "M3"][0]["power_w"]


def test_ctl_takes_the_seed_text_and_strict_json_and_logs_anything_else(env):
    fw, obs, _ = env
    obs.publish(R + "/ctl", SEED_CTL, qos=1)
    assert logged(obs, "ctl applied: E1, E2")
    wait_for(lambda: fw.ctl("evse_control")["cur_limit_ma"] == 8000)
    p = api(obs, "cmd=get_params")
    assert (p["setpoint.E2.cur"], p["setpoint.E2.phs"]) == (10000, 3)
    obs.publish(R + "/ctl", json.dumps({"E2": {"cur": 12000, "ena": False}}), qos=1)
    wait_for(lambda: api(obs, "cmd=get_params")["setpoint.E2.cur"] == 12000)
    assert api(obs, "cmd=get_params")["setpoint.E2.ena"] == 0
    for bad, why in (("{'E1': {'cur': 9000}}", "not valid JSON"), ("{E1: {cur: 9000,}}", "not valid JSON"),
                     ("{E1: {cur: 9000}, E2: {cur: 100}}", "ctl E2 cur"), ("[" * 1900, "nested deeper"),
                     ("{E9: {cur: 9000}}", "unknown device")):
        obs.publish(R + "/ctl", bad, qos=1)
        assert "nothing changed" in logged(obs, why)
    assert fw.ctl("evse_control")["cur_limit_ma"] == 8000
    assert api(obs, "cmd=get_params")["setpoint.E2.cur"] == 12000


@pytest.mark.parametrize("values, needle", [
    ({"setpoint.E2.cur": -5000}, "setpoint.E2.cur: expected an integer 6000..63000 or 0, got -5000"),
    ({"setpoint.E7.cur": 8000}, "no wallbox E7 is configured"),
    ({"setpoint.E2.colour": 1}, "unknown set-point"),
    ({"setpoint." + "k" * 3900: 1}, "expected setpoint.E<n>"),
])
def test_setpoints_outside_the_schema_are_refused(env, values, needle):
    fw, obs, _ = env
    before = api(obs, "cmd=get_params")
    ans = api(obs, "cmd=set_params", json.dumps(values))
    assert needle in ans["error"] and len(ans["error"]) < 200
    assert api(obs, "cmd=get_params") == before


def _register_strings(port):
    """Every register of the SunSpec maps (unit 1: Charging Manager, unit 2: devices), walked model by model
    with pymodbus, as bytes."""
    out = b""
    with ModbusTcpClient("127.0.0.1", port=port) as c:
        for unit in (1, 2):
            assert c.read_holding_registers(40000, count=2, device_id=unit).registers == [0x5375, 0x6E53]
            a = 40002
            while True:
                mid, length = c.read_holding_registers(a, count=2, device_id=unit).registers
                if mid == 0xFFFF:
                    break
                for off in range(0, length, 100):
                    regs = c.read_holding_registers(a + 2 + off, count=min(100, length - off),
                                                    device_id=unit).registers
                    out += b"".join(r.to_bytes(2, "big") for r in regs)
                a += 2 + length
    return out


def test_no_secret_in_anything_the_firmware_emits(env):
    fw, obs, port = env
    # the session a user and an integration have: views, API, refused input, log, HA, Modbus
    info = next_json(obs, R + "/get/dev_info", 0)
    assert [d["dev_id"] for d in info["devices"]] == ["E1", "E2", "M3"]  # E1: the board's own charge point
    assert next_json(obs, R + "/get/params", 0)["title"].startswith("mqtt://t:***@")
    assert next_json(obs, R + "/get/E2", 0)["dev_id"] == "E2"
    assert next_json(obs, "homeassistant/sensor/cfos_mqtt_M3_power_w/config", 0)["device"]["name"] \
        == "mqtt://n:***@h"
    params = api(obs, "cmd=get_params")
    assert params["mqtt_url"].startswith("mqtt://lp:***@") and params["admin_pwd"] == "***"
    assert [d["address"].split("@")[0] for d in params["devices"]] == ["mqtt://dev:***", "mqtt://meter:***"]
    api(obs, "cmd=get_dev_info")
    # refused input carrying secrets: the answers say what was wrong without repeating them
    for body in ({"devices": [{"dev_id": "M4", "driver": "meter_sdm630", "address": "http://u:%s@h" % S["refused"]}]},
                 {"devices": [{"dev_id": "M4", "driver": "meter_sdm630", "address": "u:%s@10.0.0.1:502" % S["refused"]}]},
                 {"devices": [{"dev_id": "M4", "driver": "meter_mqtt", "address": "mqtt://u:%s x@h" % S["refused"]}]},
                 {"mqtt_log_url": "mqtt://u:%s@h:99999" % S["refused"]},
                 {"mqtt_log_url": "mqtt://u:%s\"@h" % S["refused"]}):
        assert "error" in api(obs, "cmd=set_params", json.dumps(body))
    q = "cmd=set_params&mqtt_log_url=mqtt%%3A%%2F%%2Fu%%3A%s%%40h%%3A99999" % S["query"]
    ans = api(obs, q)
    assert "error" in ans and ans["query"] == "cmd=set_params&mqtt_log_url=mqtt://u:***@h:99999"
    assert "error" in api(obs, "cmd=set_params&mqtt_log_url=mqtt://u:%s@h:99999" % S["query"])
    obs.publish(R + "/set/E2", json.dumps({"state": 2, "model": "mqtt://m:%s@x" % S["refused"]}))
    obs.publish(R + "/ctl", '{"x": "mqtt://u:%s@h"}' % S["refused"], qos=1)
    logged(obs, "unknown device 'x'")
    # what a device sends is shown, and redacted like the rest
    assert next_json(obs, R + "/get/E2", 0, lambda v: v["model"].startswith("mqtt://"))["model"] == "mqtt://m:***@x"
    regs = _register_strings(port)
    assert b"mqtt://t:***@h" in regs and b"mqtt://v:***@h" in regs  # title (model 1 Md), a 60002 name
    pump(obs, 2.5)  # two more publish rounds of every get/ topic
    assert any(m[0] == R + "/log" for m in obs.messages)
    out = fw.read_output()
    assert "ready on board" in out
    emitted = [("stdout", out.encode()), ("registers", regs)]
    ours = (R + "/api/", R + "/set/", R + "/ctl", METER_TOPIC)  # what this test published itself
    from_fw = [m for m in obs.messages if not m[0].startswith(ours)]
    emitted += [("topic " + m[0], m[0].encode() + b" " + m[1]) for m in from_fw]
    topics = set(m[0] for m in from_fw)
    for t in (R + "/api_res", R + "/set_res/E2", R + "/log", R + "/get/dev_info", R + "/get/params",
              R + "/get/E2", R + "/get/M3", R + "/status"):
        assert t in topics, sorted(topics)
    assert any(t.startswith("homeassistant/") for t in topics)
    for name, secret in S.items():
        for where, data in emitted:
            assert secret.encode() not in data, "%s secret found in %s" % (name, where)
