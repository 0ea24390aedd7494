"""Input hardening (issue 12): JSON limits (api/json_in.py), the ctl bare-key syntax, the volatile set-point
schema, and the one redaction function on views, errors and logs. The same behaviour is proved on the
MicroPython binary with mosquitto in integration/test_inputs_mp.py."""
import json

import pytest

from loadpilot.api import json_in
from loadpilot.api.commands import CommandError, Commands, error_answer
from loadpilot.config import schema
from loadpilot.config.store import Store
from loadpilot.evse.control import EvseControl
from loadpilot.log import Log
from loadpilot.redact import redact

SEED_CTL = '{"E1":\n{cur: 8000, ena: true, wke: true},\n"E2":\n{cur: 10000, phs: 3}}'  # seeds/mqtt-api.md


# ---- JSON limits

@pytest.mark.parametrize("text, msg", [
    ("[" * 1900 + "]" * 1900, "nested deeper than 16 levels"),
    ('{"a":' * 17 + "1" + "}" * 17, "nested deeper than 16 levels"),
    ("{" + ",".join('"k%d":1' % i for i in range(257)) + "}", "more than 256 keys"),
    ("9" * 33, "number longer than 32"),
    ('{"a": "' + "x" * 9000 + '"}', "larger than 8192 bytes"),
    (b'{"a": "\xff"}', "not UTF-8"),
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
    ("{cur: 1}", "not valid JSON"),  # bare keys only where asked for (ctl)
])
def test_json_limits_give_a_clear_error(text, msg):
    with pytest.raises(json_in.JsonError) as e:
        json_in.loads(text)
    assert msg in str(e.value)


def test_json_within_limits_parses_and_strings_are_not_counted():
    assert json_in.loads("[" * 16 + "]" * 16) == eval("[" * 16 + "]" * 16)
    assert json_in.loads('{"a": "[[[[{{{{::::" , "b": "\\"{"}') == {"a": "[[[[{{{{::::", "b": '"{'}
    assert json_in.loads(memoryview(b'{"x": -1.5e3}')) == {"x": -1500.0}


def test_relaxed_takes_the_seed_ctl_text_and_strict_json():
    want = {"E1": {"cur": 8000, "ena": True, "wke": True}, "E2": {"cur": 10000, "phs": 3}}
    assert json_in.loads(SEED_CTL, relaxed=True) == want
    assert json_in.loads(json.dumps(want), relaxed=True) == want
    # only keys are relaxed: string contents stay as they are, and nothing else is accepted
    assert json_in.loads('{a: "b: c", "d": {e_1 : [1, 2]}}', relaxed=True) == {"a": "b: c", "d": {"e_1": [1, 2]}}
    for bad in ("{'E1': {}}", "{E1: {cur: 8000,}}", "{E1: [cur: 1]}", "{E1: {cur: eight}}", "[" * 17):
        with pytest.raises(json_in.JsonError):
            json_in.loads(bad, relaxed=True)


# ---- commands: execute() and the set-point schema

@pytest.fixture
def cmds(tmp_path):
    store = Store(str(tmp_path), Log(console_level=100))
    store.set_many({"devices": [{"dev_id": "E2", "driver": "http_input", "address": "mqtt"},
                                {"dev_id": "M2", "driver": "http_input", "address": "mqtt"}],
                    "cm_vars": [{"name": "x", "expr": "1"}], "lb_enabled": False})
    store.flush()
    return Commands(store, store.log, EvseControl(store))


def test_deep_or_huge_bodies_and_query_values_are_refused_with_a_message(cmds):
    before = cmds.params_view()
    for query, body, msg in (("cmd=set_params", "[" * 1900, "nested deeper than 16"),
                             ("cmd=set_params", b'{"a": 1}' + b" " * 9000, "larger than 8192"),
                             ("cmd=set_params&max_total_current=" + "[" * 100, None, "nested deeper than 16"),
                             ("cmd=set_params&max_total_current=" + "1" * 100, None, "number longer")):
        with pytest.raises(CommandError) as e:
            cmds.execute(query, body)
        assert msg in str(e.value)
    assert cmds.params_view() == before


@pytest.mark.parametrize("values, msg", [
    ({"setpoint.E2.cur": -5000}, "setpoint.E2.cur: expected an integer 6000..63000 or 0"),
    ({"setpoint.E2.cur": 5999}, "6000..63000"),
    ({"setpoint.E2.cur": 63001}, "6000..63000"),
    ({"setpoint.E2.cur": 8000.5}, "integer"),
    ({"setpoint.E2.ena": 2}, "0..1"),
    ({"setpoint.E2.ena": True}, "integer"),
    ({"setpoint.E2.phs": 2}, "1..1 or 3"),
    ({"setpoint.E2.volts": 1}, "unknown set-point"),
    ({"setpoint.E9.cur": 8000}, "no wallbox E9 is configured"),
    ({"setpoint.M2.cur": 8000}, "expected setpoint.E<n>"),
    ({"setpoint.E2": 8000}, "expected setpoint.E<n>"),
    ({"setpoint." + "x" * 3900: 1}, "expected setpoint.E<n>"),
    ({"setpoint.E2.cur": 8000, "max_total_current": -1}, "max_total_current"),
    ({"cm_var.x": 1}, "use set_cm_vars"),
])
def test_setpoints_have_a_schema_and_a_refusal_changes_nothing(cmds, values, msg):
    before = (cmds.params_view(), cmds.store.dirty)
    with pytest.raises(CommandError) as e:
        cmds.set_params(values)
    assert msg in str(e.value)
    assert len(str(e.value)) < 200  # a long key is not echoed back whole
    assert (cmds.params_view(), cmds.store.dirty) == before


def test_query_values_that_are_not_json_stay_strings(cmds):
    assert cmds.execute("cmd=set_params&title=Garage%20box&max_total_current=40000")["ok"] is True
    assert cmds.store.get("title") == "Garage box" and cmds.store.get("max_total_current") == 40000


def test_a_long_key_is_echoed_redacted_and_cut(cmds):
    key = "setpoint.mqtt://u:" + "s" * 60 + "@h"
    with pytest.raises(CommandError) as e:
        cmds.set_params({key: 1})
    assert "sss" not in str(e.value) and "setpoint.mqtt://u:***@h" in str(e.value)


def test_valid_setpoints_are_taken(cmds):
    assert cmds.set_params({"setpoint.E2.cur": 0, "setpoint.E2.ena": 1, "setpoint.E2.phs": 3}) == \
        ["setpoint.E2.cur", "setpoint.E2.ena", "setpoint.E2.phs"]
    assert cmds.execute("cmd=set_params", '{"setpoint.E2.cur": 16000}')["ok"] is True
    assert cmds.store.volatile.get("setpoint.E2.cur") == 16000 and not cmds.store.dirty
    cmds.ctl({"E2": {"cur": 8000, "ena": False, "wke": True, "phs": 1}})
    assert [cmds.store.volatile.get("setpoint.E2." + k) for k in ("cur", "ena", "wke", "phs")] == [8000, 0, 1, 1]


def test_the_volatile_pool_holds_every_valid_key_and_no_more():
    assert schema.MAX_VOLATILE_FREE == schema.MAX_WALLBOXES * 4 + 32
    with pytest.raises(schema.ConfigError):
        schema.validate_volatile("cm_var." + "v" * 41, 1)
    for bad in (10 ** 40, float("inf"), True, "1"):
        with pytest.raises(schema.ConfigError):
            schema.validate_volatile("cm_var.x", bad)


def test_cm_var_values_are_bounded(cmds):
    with pytest.raises(CommandError):
        cmds.execute("cmd=set_cm_vars", '{"x": 1e300}')
    with pytest.raises(CommandError):
        cmds.execute("cmd=set_cm_vars&name=x&val=1e16")
    assert cmds.execute("cmd=set_cm_vars", '{"x": -2.5}') == {"ok": True}


# ---- one redaction function

def test_redact_finds_passwords_in_urls_anywhere_in_a_text():
    assert redact("mqtt://user:hunter2@broker:1883") == "mqtt://user:***@broker:1883"
    assert redact("mqtt://broker") == "mqtt://broker" and redact("no url @ all") == "no url @ all"
    assert redact("address 'mqtt://u:p@ss w0rd@h:1' refused") == "address 'mqtt://u:***@h:1' refused"
    assert redact('{"a": "mqtts://u:s1@h", "b": "http://v:s2@g/x", "c": "me@home"}') == \
        '{"a": "mqtts://u:***@h", "b": "http://v:***@g/x", "c": "me@home"}'
    assert schema.redact_url is redact  # one function


def test_device_addresses_and_definitions_are_redacted_in_views_and_errors(cmds):
    cmds.execute("cmd=set_params", json.dumps({"devices": [
        {"dev_id": "E2", "driver": "http_input", "address": "mqtt://box:boxsecret@10.0.0.3"},
        {"dev_id": "M3", "driver": "meter_mqtt", "address": "mqtts://m:metersecret@10.0.0.4",
         "definition": {"rtype": 2, "power_w": {"address": "t/x", "query": "power_w"}}}]}))
    view = json.dumps(cmds.execute("cmd=get_params"))
    assert "boxsecret" not in view and "metersecret" not in view and "mqtt://box:***@10.0.0.3" in view
    # refused addresses: the error text never carries the password
    for address in ("mqtt://u:refusedsecret w@h", "u:refusedsecret@10.0.0.9:502", "http://u:refusedsecret@h"):
        with pytest.raises(CommandError) as e:
            cmds.execute("cmd=set_params", json.dumps({"devices": [
                {"dev_id": "M4", "driver": "meter_sdm630", "address": address}]}))
        assert "refusedsecret" not in str(e.value)
    for url in ('mqtt://u:refused"secret@h', "mqtt://u:refused secret@h"):
        with pytest.raises(CommandError) as e:
            cmds.execute("cmd=set_params", json.dumps({"mqtt_url": url}))
        assert "secret" not in str(e.value)


def test_error_answer_redacts_message_and_query_also_percent_encoded():
    a = error_answer("x: 'mqtt://u:pw1@h' bad", "cmd=set_params&mqtt_url=mqtt%3A%2F%2Fu%3Apw2%40h")
    assert "pw1" not in json.dumps(a) and "pw2" not in json.dumps(a)
    assert a["query"] == "cmd=set_params&mqtt_url=mqtt://u:***@h"
    assert error_answer("e", "cmd=get_params") == {"error": "e", "query": "cmd=get_params"}


def test_log_lines_are_redacted_at_the_source(capsys):
    log = Log()
    seen = []
    log.add_listener(seen.append)
    log.warn("mqtt", "cannot reach mqtt://u:logsecret@10.0.0.1:1883")
    assert "logsecret" not in capsys.readouterr().out
    assert "logsecret" not in repr(log.lines()) and "logsecret" not in repr(seen)


def test_a_too_deep_installer_config_json_is_refused_with_its_reason_kept_aside(tmp_path):
    (tmp_path / "config.json").write_text('{"title": ' + "[" * 1000 + "]" * 1000 + "}")
    log = Log(console_level=100)
    store = Store(str(tmp_path), log)
    assert store.get("title") == "LoadPilot"  # defaults
    assert (tmp_path / "config.json.bad").exists() and not (tmp_path / "config.json").exists()
    assert any("config.json rejected" in line[3] for line in log.lines())


def test_byte_class_table_matches_its_rule():
    # json_in._CLASS is a literal (kept in flash when frozen): it must say what the scan's classes say
    t = bytearray(256)
    for b in b" \t\r\n":
        t[b] = 1
    for b in b"0123456789+-.":
        t[b] = 2
    for b in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_":
        t[b] = 3
    t[ord('"')] = 4
    t[ord("{")] = t[ord("[")] = 5
    t[ord("}")] = t[ord("]")] = 6
    t[ord(":")] = 7
    t[ord(",")] = 8
    assert json_in._CLASS == bytes(t)
    assert (json_in._C_SPACE, json_in._C_WORD, json_in._C_IDENT, json_in._C_QUOTE, json_in._C_OPEN,
            json_in._C_CLOSE, json_in._C_COLON, json_in._C_COMMA) == (1, 2, 3, 4, 5, 6, 7, 8)
