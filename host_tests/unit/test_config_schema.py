"""Schema and validation of the configuration (CPython)."""
import os

import pytest

from loadpilot.config import migrate, schema
from loadpilot.config.schema import ConfigError


def err(key, value):
    with pytest.raises(ConfigError) as e:
        schema.validate(key, value)
    return e.value


def test_every_default_passes_its_own_check():
    for key, value in schema.defaults().items():
        assert schema.validate(key, value) == value
    for row in schema.VOLATILE_FIELDS:
        assert schema.validate_volatile(row[0], row[2]) == row[2]


def test_documented_defaults():
    d = schema.defaults()
    assert d["modbus_id"] == 1 and d["modbus_tcp_port"] == 1502 and d["commit_delay_s"] == 150
    assert d["modbus_rtu_port"] == "" and d["devices"] == []
    # the SunSpec 60000 percent is not a stored setting at all
    assert "max_total_cur_prc" not in d


def test_range_error_names_field_and_reason():
    e = err("max_total_current", -1)
    assert e.field == "max_total_current" and "out of range 0..1000000" in e.reason and "-1" in e.reason
    assert "expected an integer" in err("reserve_current", 12.5).reason
    assert "expected an integer" in err("overdraft_cur", True).reason  # a bool is not a current
    assert "true or false" in err("lb_enabled", 1).reason
    assert "one of -1, 0, 1" in err("disable_policy", 2).reason
    assert err("modbus_id", 247).field == "modbus_id"


def test_unknown_and_volatile_keys_are_rejected_clearly():
    assert str(err("max_totl_current", 1)) == "max_totl_current: unknown key"
    assert "volatile" in str(err("max_total_cur_prc", 50))
    assert "volatile" in str(err("cm_flag3", 1))
    with pytest.raises(ConfigError) as e:
        schema.validate_volatile("max_total_current", 1)
    assert "persistent" in str(e.value)
    with pytest.raises(ConfigError) as e:
        schema.validate_volatile("max_total_cur_prc", 101)
    assert "0..100" in str(e.value)


def test_rtu_port_string():
    assert schema.validate("modbus_rtu_port", "COM1,9600,8,N,1") == "COM1,9600,8,n,1"
    assert schema.validate("modbus_rtu_port", "") == ""
    assert "parity" in err("modbus_rtu_port", "COM1,9600,8,x,1").reason
    assert "baud" in err("modbus_rtu_port", "COM1,9601,8,n,1").reason
    assert "NAME,BAUD" in err("modbus_rtu_port", "COM1").reason


def test_mqtt_url_and_redaction():
    assert schema.validate("mqtt_url", "mqtts5://u:pw@broker.lan:8884") == "mqtts5://u:pw@broker.lan:8884"
    assert schema.split_mqtt_url("mqtts://broker")[4] == 8883
    assert schema.split_mqtt_url("mqtt://u:p@broker")[1:] == ("u", "p", "broker", 1883)
    e = err("mqtt_url", "http://user:hunter2@broker")
    assert e.field == "mqtt_url" and "scheme" in e.reason and "hunter2" not in str(e)
    e = err("mqtt_url", "mqtt://user:hunter2@broker:99999")
    assert "port" in e.reason and "hunter2" not in str(e)
    assert schema.redact_url("mqtt://user:hunter2@broker:1883") == "mqtt://user:***@broker:1883"
    assert schema.redact_url("mqtt://broker") == "mqtt://broker"


def test_secret_errors_never_echo_the_value():
    e = err("admin_pwd", "x" * 65)
    assert "x" * 10 not in str(e) and "65" not in str(e)
    assert "12345" not in str(err("admin_pwd", 12345))
    assert "4242" not in str(err("mqtt_url", 4242))


def test_secret_wrapper_prints_redacted():
    s = schema.wrap("admin_pwd", "hunter2")
    assert str(s) == repr(s) == "%s" % s == "***" and "hunter2" not in repr([s]) + repr({"a": s})
    assert s == "hunter2" and s.reveal() == "hunter2"
    u = schema.wrap("mqtt_url", "mqtt://u:hunter2@b")
    assert str(u) == "mqtt://u:***@b"


WALLBOX = {"dev_id": "E1", "driver": "evse_powerbrain", "address": "COM1,9600,8,n,1", "id": 2}
METER = {"dev_id": "M1", "driver": "meter_sdm630", "role": 3, "publish_mqtt": True}


def test_devices_filled_with_defaults():
    out = schema.validate("devices", [WALLBOX, METER])
    assert out[0]["min_charging_cur"] == 6000 and out[0]["prio"] == 1 and out[0]["publish_modbus"] is False
    assert out[1]["role"] == 3 and "min_charging_cur" not in out[1]


@pytest.mark.parametrize("devices, field, reason", [
    ([{"driver": "x"}], "devices[0].dev_id", "required"),
    ([{"dev_id": "X1", "driver": "x"}], "devices[0].dev_id", "E1..E99"),
    ([{"dev_id": "E1"}], "devices[0].driver", "required"),
    ([dict(WALLBOX, role=1)], "devices[0].role", "not allowed for a wallbox"),
    ([dict(METER, prio=2)], "devices[0].prio", "not allowed for a meter"),
    ([dict(METER, role=9)], "devices[0].role", "out of range 0..6"),
    ([WALLBOX, dict(WALLBOX)], "devices[1].dev_id", "duplicate E1"),
    ([dict(WALLBOX, min_charging_cur=20000)], "devices[0].min_charging_cur", "max_charging_cur"),
    ([dict(WALLBOX, colour="red")], "devices[0].colour", "unknown key"),
    ([dict(WALLBOX, driver="Bad Driver")], "devices[0].driver", "a-z"),
    ({"E1": WALLBOX}, "devices", "list"),
])
def test_device_errors_name_the_field(devices, field, reason):
    e = err("devices", devices)
    assert e.field == field and reason in e.reason


def test_at_most_25_wallboxes():
    boxes = [{"dev_id": "E%d" % i, "driver": "x"} for i in range(1, 27)]
    assert "25 wallboxes" in err("devices", boxes).reason
    assert len(schema.validate("devices", boxes[:25])) == 25


def test_validate_all_partial_and_first_error():
    assert schema.validate_all({"title": "Garage", "modbus_id": 3}) == {"title": "Garage", "modbus_id": 3}
    with pytest.raises(ConfigError) as e:
        schema.validate_all({"title": "Garage", "modbus_tcp_port": 70000})
    assert e.value.field == "modbus_tcp_port"
    with pytest.raises(ConfigError):
        schema.validate_all([1, 2])


def test_migration_v1_renames_and_converts():
    v1 = {"max_current": 25000, "power_reserve": 2000, "overdraw": 500, "max_wallbox_current": 22000,
          "lm_active": 0, "mqtt_host": "broker.lan", "mqtt_port": 1884, "title": "Old"}
    v2, steps = migrate.migrate(1, dict(v1))
    assert steps == ["v1->v2"]
    assert v2 == {"max_total_current": 25000, "reserve_current": 2000, "overdraft_cur": 500,
                  "max_total_evse_current": 22000, "lb_enabled": False, "mqtt_url": "mqtt://broker.lan:1884",
                  "title": "Old"}
    assert schema.validate_all(v2)  # the result is valid v2


def test_migration_refuses_newer_or_bogus_versions():
    with pytest.raises(ValueError) as e:
        migrate.migrate(schema.VERSION + 1, {})
    assert "newer firmware" in str(e.value)
    with pytest.raises(ValueError):
        migrate.migrate(0, {})
    assert migrate.migrate(schema.VERSION, {"a": 1}) == ({"a": 1}, [])


def test_manager_settings_are_checked():
    from loadpilot.config import schema
    ok = schema.validate("cm_schedule", [{"hour": 18, "l1": 10000, "l2": 10000, "l3": 10000},
                                         {"hour": 6, "l1": 32000, "l2": 32000, "l3": 32000}])
    assert [e["hour"] for e in ok] == [6, 18]
    for bad, field in (([{"hour": 6, "l1": 1, "l2": 1, "l3": 1}], "at least 2 entries"),
                       ([{"hour": 24, "l1": 1, "l2": 1, "l3": 1}] * 2, "cm_schedule[0].hour"),
                       ([{"hour": 6, "l1": 1, "l2": 1, "l3": 1}] * 2, "same hour")):
        with pytest.raises(schema.ConfigError) as e:
            schema.validate("cm_schedule", bad)
        assert field in str(e.value)
    with pytest.raises(schema.ConfigError) as e:
        schema.validate("shedding_offsets", [1000, -1, 0])
    assert "shedding_offsets[1]" in str(e.value)
    with pytest.raises(schema.ConfigError) as e:
        schema.validate("group_limits", [{"group": 1, "l1": 16000, "l2": 16000, "l3": 16000, "l4": 1}])
    assert "group_limits[0].l4: unknown key" in str(e.value)
    with pytest.raises(schema.ConfigError) as e:
        schema.validate("devices", [{"dev_id": "E1", "driver": "x", "pv_mode": "solar"}])
    assert "devices[0].pv_mode" in str(e.value)


GRID_DEF = {"rtype": 0, "current_l1": {"address": 6, "type": "float", "resolution": 1000},
            "power_w": {"address": 0x34, "type": "float"}}


@pytest.mark.parametrize("dev, field, reason", [
    (dict(WALLBOX, driver="powerbrain"), "devices[0].driver", "unknown driver 'powerbrain' (known: evse_loadpilot"),
    (dict(METER, driver="evse_powerbrain", address="COM1,9600,8,n,1"), "devices[0].driver", "give it an E dev_id"),
    (dict(WALLBOX, driver="meter_sdm630"), "devices[0].driver", "give it an M dev_id"),
    (dict(WALLBOX, address="COM1,9600,8,x,1"), "devices[0].address", "parity"),
    (dict(WALLBOX, address="wallbox.lan:502"), "devices[0].address", "expected IP:port"),
    (dict(WALLBOX, address=""), "devices[0].address", "needs an address"),
    (dict(METER, address="evse"), "devices[0].address", "give it an E dev_id"),
    (dict(METER, address="COM2,9600,8,n,1", driver="meter_modbus", definition={"rtype": 0, "power_w": {
        "address": 0x34, "type": "double"}}), "devices[0].definition", "M1.definition.power_w: type must be"),
    (dict(METER, address="COM2,9600,8,n,1", driver="meter_modbus", definition={"rtype": 0, "power_w": {
        "address": 0x34, "type": "float"}}), "devices[0].definition", "a grid meter needs current_l1..l3"),
    (dict(METER, address="mqtt", driver="meter_mqtt", definition={"rtype": 2, "power_w": {
        "address": "t", "type": "float"}}), "devices[0].definition", "a grid meter needs"),
    (dict(METER, address="mqtt", driver="meter_mqtt", definition={"rtype": 0}), "devices[0].definition",
     "needs rtype 2 (MQTT)"),
])
def test_a_device_the_layer_could_not_drive_is_refused_when_set(dev, field, reason):
    with pytest.raises(ConfigError) as e:
        schema.validate_new("devices", [dev])
    assert e.value.field == field and reason in e.value.reason, e.value
    schema.validate("devices", [dev])  # the shape alone is fine: a stored list with it still loads


def test_good_devices_pass_the_new_value_checks():
    devs = [WALLBOX, dict(METER, address="COM1,9600,8,n,1"),
            {"dev_id": "E2", "driver": "evse_local", "address": "evse"},
            {"dev_id": "M2", "driver": "meter_modbus", "address": "10.0.0.9:502", "role": 3, "definition": GRID_DEF},
            {"dev_id": "M3", "driver": "meter_modbus", "address": "10.0.0.9", "role": 2,
             "definition": {"rtype": 0, "power_w": {"address": 1, "type": "int16"}}},  # a PV meter: a total will do
            {"dev_id": "M4", "driver": "http_input", "role": 3}]
    assert len(schema.validate_new("devices", devs)) == 6


# -- modbus_proxy: which TCP unit ids the SunSpec server forwards to which RS485 bus --------------------------

@pytest.mark.parametrize("value, normalized", [
    ("", ""),
    ("2-9,12@COM1", "2-9,12@COM1"),
    (" 2 - 9 , 12 @ com1 ; 20@COM2,9600,8,N,1 ;", "2-9,12@COM1;20@COM2,9600,8,n,1"),
    ("7-7@COM1;8@COM1", "7@COM1;8@COM1"),
])
def test_proxy_setting_is_normalized(value, normalized):
    assert schema.validate("modbus_proxy", value) == normalized


@pytest.mark.parametrize("value, reason", [
    ("5", "expected UNITS@PORT"),
    ("5@", "expected UNITS@PORT"),
    ("0@COM1", "out of range 1..247"),
    ("240-248@COM1", "out of range 1..247"),
    ("9-2@COM1", "runs backwards"),
    ("x@COM1", "not a unit id"),
    ("2-9@COM1;9@COM2", "unit 9 is listed twice"),
    ("5@COM0", "must be COM1, COM2"),
    ("5@ttyS0", "must be COM1, COM2"),
    ("5@COM1,9600", "NAME,BAUD,BITS,PARITY,STOP"),
    ("5@COM1,19200,8,n,1;6@COM1,9600,8,n,1", "COM1 is given twice with different settings"),
    (5, "expected a string"),
    ("1,2,3,4,5,6,7,8,9,10," * 10 + "@COM1", "at most 200 characters"),
])
def test_bad_proxy_settings_name_the_field(value, reason):
    with pytest.raises(ConfigError) as e:
        schema.validate("modbus_proxy", value)
    assert e.value.field == "modbus_proxy" and reason in e.value.reason


@pytest.mark.parametrize("new, field, reason", [
    ({"modbus_proxy": "1@COM1"}, "modbus_proxy", "unit 1 is this box's own SunSpec server"),
    ({"modbus_proxy": "2-4@COM1"}, "modbus_proxy", "unit 2 is this box's own SunSpec server"),
    ({"modbus_proxy": "5@COM3"}, "modbus_proxy", "the board has no COM3 (it has COM1, COM2)"),
    ({"modbus_proxy": "5@COM2", "slave_rtu_port": "COM2,9600,8,n,1"}, "modbus_proxy",
     "COM2 is this box's slave port (slave_rtu_port)"),
    ({"modbus_id": 9}, "modbus_id", "conflicts with modbus_proxy '10-12@COM1': unit 10 is"),
    ({"modbus_rtu_port": "COM1,9600,8,n,1"}, "modbus_rtu_port", "COM1 is this box's slave port (modbus_rtu_port)"),
])
def test_proxy_conflicts_with_other_settings_name_the_field_being_set(new, field, reason):
    current = dict(schema.defaults(), modbus_proxy="10-12@COM1")
    with pytest.raises(ConfigError) as e:
        schema.check_together(current, new, ["COM1", "COM2"])
    assert e.value.field == field and reason in e.value.reason


def test_proxy_settings_that_fit_pass_the_checks_together():
    current = dict(schema.defaults(), modbus_proxy="10-12@COM1")
    for new in ({"modbus_proxy": "3-200@COM1;201@COM2"}, {"modbus_id": 13}, {"modbus_rtu_port": "COM2,9600,8,n,1"},
                {"title": "unrelated"}, {"modbus_proxy": ""}):
        schema.check_together(current, new, ["COM1", "COM2"])
    schema.check_together(current, {"modbus_proxy": "5@COM7"}, None)  # board not known: that rule is skipped
    assert schema.com_ports({"rs485_2": {}, "rs485_1": {}, "debug": {}}) == ["COM1", "COM2"]


def test_the_schema_and_the_store_import_nothing_above_config():
    # the device checks reach the schema through its hook (the app registers them): config/ stands alone
    import subprocess
    import sys
    code = ("import sys; sys.path[:0] = [%r, %r]; import mpshim; mpshim.install(); "
            "import loadpilot.config.store; "
            "print(sorted(m for m in sys.modules if m.startswith('loadpilot.') and "
            "not m.startswith(('loadpilot.config', 'loadpilot.redact'))))")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code % (here, os.path.join(os.path.dirname(here), "firmware"))],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


# ---- the socket budget (boards declare "sockets"; docs/configuration.md "Sockets")

DEVKIT = {"sockets": 10, "s0_ports": 2, "evse": True, "board": "esp32_devkit"}
NO_S0 = {"sockets": 10, "s0_ports": 0, "evse": True, "board": "small"}


def plan(values, budget):
    return schema.socket_plan(dict(schema.defaults(), **values).get, budget)


def test_socket_plan_counts_listeners_brokers_and_tcp_hosts():
    values = {"mqtt_url": "mqtt://u:pw@10.0.0.2", "mqtt_api_url": "mqtt",
              "mqtt_dev_info_url": "mqtt://u:pw@10.0.0.2:1883",
              "mqtt_log_url": "mqtt://10.0.0.3", "pb_tcp_port": 0,
              "devices": [{"dev_id": "E2", "driver": "x", "address": "10.0.0.5:502"},
                          {"dev_id": "M3", "driver": "x", "address": "10.0.0.5"},  # same host:port: shared
                          {"dev_id": "M4", "driver": "x", "address": "10.0.0.6:1502"},
                          {"dev_id": "M5", "driver": "x", "address": "COM1,9600,8,n,1"},
                          {"dev_id": "M6", "driver": "meter_mqtt", "address": ""},  # the default broker: shared
                          {"dev_id": "E7", "driver": "x", "address": "10.0.0.9", "device_enabled": False}]}
    need, uses, servers, own = plan(values, NO_S0)
    # SunSpec 1502: listener + 1 + 1; brokers 10.0.0.2 (api, dev_info, M6) and 10.0.0.3; two device hosts
    assert need == 3 + 2 + 2 and own == 2
    text = "; ".join("%s: %d" % u for u in uses)
    assert "modbus_tcp_port 1502" in text and "MQTT broker of mqtt_api_url, mqtt_dev_info_url, M6: 1" in text
    assert "MQTT broker of mqtt_log_url: 1" in text and "E2, M3, M4 (2 host:port): 2" in text
    assert "pw" not in text
    assert servers == [["modbus_tcp_port", 1502, 3, 2]]  # the 3 spare sockets: a client, a waiting place, a client


def test_socket_plan_sizes_servers_to_fill_the_budget_and_no_further():
    need, uses, servers, _ = plan({}, {"sockets": 64, "s0_ports": 2, "evse": True, "board": "big"})
    assert need == 12 and [s[2:] for s in servers] == [[4, 4]] * 4
    need, uses, servers, _ = plan({"pb_tcp_port": 0}, DEVKIT)  # SunSpec alone: 3 of 10, 7 spare, 6 taken
    assert need == 3 and servers == [["modbus_tcp_port", 1502, 4, 4]]
    need, uses, servers, _ = plan({}, NO_S0)  # SunSpec and the PB EVSE port: 6 of 10, the 4 spare shared out
    assert need == 6 and [s[2:] for s in servers] == [[2, 2], [2, 2]]
    total = need + sum(s[2] - 1 + s[3] - 1 for s in servers)
    assert total == 10


HOSTS = [{"dev_id": "E%d" % i, "driver": "x", "address": "10.0.0.%d:502" % i} for i in range(1, 26)]


def test_tcp_devices_past_the_budget_connect_per_poll_on_one_shared_socket():
    # a 25-wallbox site on a 10-socket PSRAM board: SunSpec (3) and a broker (1) leave 6: 5 hosts keep their
    # connection, the other 20 take turns on the sixth
    need, uses, servers, own = plan({"pb_tcp_port": 0, "mqtt_api_url": "mqtt://10.0.0.2", "devices": HOSTS}, DEVKIT)
    assert (need, own) == (10, 5) and servers == [["modbus_tcp_port", 1502, 1, 1]]
    assert ("Modbus TCP devices %s (25 host:port: 5 connected, 20 per poll on 1 shared socket)"
            % ", ".join(d["dev_id"] for d in HOSTS), 6) in uses
    schema.check_together(dict(schema.defaults(), pb_tcp_port=0), {"devices": HOSTS}, None, DEVKIT)


def test_a_setting_that_exceeds_the_socket_budget_is_refused_naming_what_takes_them():
    current = dict(schema.defaults(), pb_tcp_port=0, devices=HOSTS[:8])
    schema.check_together(current, {"omcci_tcp_port": 502}, None, DEVKIT)  # 6 for servers, 4 for the hosts
    with pytest.raises(ConfigError) as e:  # the S0 ports of pb_tcp_port count: 4 servers of 3 sockets
        schema.check_together(current, {"pb_tcp_port": 4701}, None, DEVKIT)
    assert e.value.field == "pb_tcp_port"
    assert "would need 13 sockets, board esp32_devkit has 10" in e.value.reason
    assert "modbus_tcp_port 1502 (listener, clients, waiting): 3" in e.value.reason
    assert "pb_tcp_port+2 4703 (listener, clients, waiting): 3" in e.value.reason
    assert "(8 host:port: 0 connected, 8 per poll on 1 shared socket): 1" in e.value.reason
    schema.check_together(current, {"pb_tcp_port": 4701}, None, None)  # board not known: rule skipped
    brokers = {"mqtt_api_url": "mqtt://10.0.0.2", "mqtt_dev_info_url": "mqtt://10.0.0.3",
               "mqtt_log_url": "mqtts://10.0.0.4", "mqtt_ta_log_url": "mqtt5://10.0.0.5",
               "omcci_tcp_port": 502}
    with pytest.raises(ConfigError) as e:  # 6 + 4 brokers: no socket left for the devices
        schema.check_together(current, brokers, None, DEVKIT)
    assert e.value.field == "omcci_tcp_port" and "would need 11 sockets" in e.value.reason


def test_a_change_that_frees_sockets_passes_even_while_still_over_budget():
    current = dict(schema.defaults(), omcci_tcp_port=502)  # 5 servers: 15 sockets on a 10-socket board
    schema.check_together(current, {"omcci_tcp_port": 0}, None, DEVKIT)  # 12: still over, but fewer
    schema.check_together(current, {"title": "x"}, None, DEVKIT)  # not a socket setting: not checked
    with pytest.raises(ConfigError):
        schema.check_together(current, {"modbus_tcp_port": 1503}, None, DEVKIT)  # as many as before: refused
