import pytest

from loadpilot.api.commands import CommandError, Commands, parse_query
from loadpilot.config.store import Store
from loadpilot.log import Log


@pytest.fixture
def cmds(tmp_path):
    store = Store(str(tmp_path), Log(console_level=100))
    store.set("cm_vars", [{"name": "surplus", "expr": "M1.power_w"}, {"name": "price"}])
    store.flush()
    return Commands(store, store.log)


def test_set_params_persists_and_percent_stays_volatile(cmds):
    saves = cmds.store.saves
    changed = cmds.execute("cmd=set_params", '{"max_total_current": 40000, "max_total_cur_prc": 60}')
    assert changed == {"ok": True, "changed": ["max_total_current", "max_total_cur_prc"]}
    # the HTTP/MQTT/page command commits a persistent change at once (a power cut right after keeps it)
    assert cmds.store.get("max_total_current") == 40000 and not cmds.store.dirty and cmds.store.saves == saves + 1
    assert cmds.store.volatile.get("max_total_cur_prc") == 60
    cmds.execute("cmd=set_params", '{"max_total_cur_prc": 55}')  # volatile only: nothing written
    cmds.execute("cmd=set_params", '{"max_total_current": 40000}')  # the same value: nothing written
    assert not cmds.store.dirty and cmds.store.flush() is False and cmds.store.saves == saves + 1
    cmds.set_params({"max_total_current": 39000})  # the typed call (Modbus writes) stays coalesced
    assert cmds.store.dirty and cmds.store.saves == saves + 1


@pytest.mark.parametrize("query, body, msg", [
    ("cmd=set_params", '{"max_total_current": -1}', "max_total_current: out of range"),
    ("cmd=set_params", '{"max_total_current": 40000, "max_total_cur_prc": 101}', "max_total_cur_prc"),
    ("cmd=set_params", '{"no_such": 1}', "no_such: unknown key"),
    ("cmd=set_params", "{not json", "not valid JSON"),
    ("cmd=set_params", "[1, 2]", "expected a non-empty JSON object"),
    ("cmd=launch_rockets", None, "unknown command 'launch_rockets'"),
    ("cmd=set_cm_vars&name=nope&val=1", None, "unknown variable 'nope'"),
    ("cmd=set_cm_vars&name=price&val=abc", None, "expected a number"),
    ("cmd=set_cm_vars&name=price&val=nan", None, "finite"),
])
def test_bad_input_is_refused_and_changes_nothing(cmds, query, body, msg):
    before = (cmds.params_view(), cmds.store.dirty)
    with pytest.raises(CommandError) as e:
        cmds.execute(query, body)
    assert msg in str(e.value)
    assert (cmds.params_view(), cmds.store.dirty) == before


def test_cm_vars_fix_value_and_drop_formula_until_reboot(cmds):
    assert cmds.execute("cmd=get_cm_vars") == {"surplus": None, "price": None}
    cmds.execute("cmd=set_cm_vars&name=surplus&val=1.5")
    assert cmds.execute("cmd=get_cm_vars")["surplus"] == 1.5 and "surplus" in cmds.fixed_vars
    cmds.execute("cmd=set_cm_vars", '{"price": 0.31, "surplus": 2}')
    assert cmds.execute("cmd=get_cm_vars") == {"surplus": 2.0, "price": 0.31}
    assert not cmds.store.dirty  # variables are never saved
    assert cmds.store.get("cm_vars")[0]["expr"] == "M1.power_w"  # the stored formula stays for the next boot


def test_flags_are_volatile_and_checked(cmds):
    cmds.set_flag(0, 1)
    assert cmds.store.volatile.get("cm_flag1") == 1 and not cmds.store.dirty
    with pytest.raises(CommandError):
        cmds.set_flag(32, 1)
    with pytest.raises(CommandError):
        cmds.set_flag(3, 2)


def test_secrets_never_leave_through_get_params(cmds):
    cmds.execute("cmd=set_params", '{"admin_pwd": "hunter22", "mqtt_url": "mqtt://u:topsecret@10.0.0.2"}')
    view = cmds.execute("cmd=get_params")
    assert "hunter22" not in repr(view) and "topsecret" not in repr(view)
    assert view["mqtt_url"] == "mqtt://u:***@10.0.0.2"


def test_query_parsing():
    assert parse_query("?cmd=set_cm_vars&name=a%20b&val=1") == {"cmd": "set_cm_vars", "name": "a b", "val": "1"}
