"""The configuration store on CPython: deferred commits, A/B slots, boot paths, installer import, secrets."""
import json
import os
import zlib

import pytest

from loadpilot.config import schema
from loadpilot.config.schema import ConfigError
from loadpilot.config.store import SLOTS, Store
from loadpilot.log import Log
from mpshim import FakeClock


class Env:
    def __init__(self, root):
        self.root = str(root)
        self.clock = FakeClock()
        self.log = Log(size=256)

    def store(self):
        return Store(self.root, self.log, self.clock)

    def lines(self):
        return [l[3] for l in self.log.lines()]

    def files(self):
        return sorted(os.listdir(self.root))

    def write_slot(self, name, seq, values, version=schema.VERSION, crc=None):
        body = json.dumps(values).encode()
        crc = zlib.crc32(body) if crc is None else crc
        with open(os.path.join(self.root, name), "wb") as f:
            f.write(b"LPCFG v=%d seq=%d len=%d crc=%08x\n" % (version, seq, len(body), crc) + body)


def _public_defaults():
    """The defaults as view() shows them: the factory admin password is a secret like any other."""
    return {k: schema.public_value(k, v) for k, v in schema.defaults().items()}


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def test_missing_store_gives_defaults_and_says_so(env):
    s = env.store()
    assert s.view() == _public_defaults() and not s.dirty
    assert any("no stored configuration: using defaults" in l for l in env.lines())
    assert env.files() == []  # booting wrote nothing


def test_change_reaches_flash_after_commit_delay_and_survives_reboot(env):
    s = env.store()
    assert s.set("max_total_current", 25000) is True
    assert s.get("max_total_current") == 25000 and s.dirty
    env.clock.advance_ms(149000)
    assert s.poll() is False and env.files() == []
    env.clock.advance_ms(1000)
    assert s.poll() is True and s.saves == 1 and not s.dirty
    assert env.store().get("max_total_current") == 25000


def test_changes_within_the_window_coalesce_into_one_save(env):
    s = env.store()
    for i in range(149):
        s.set("max_total_current", 20000 + i)
        s.set("reserve_current", i)
        env.clock.advance_ms(1000)
        s.poll()
    assert s.saves == 0
    env.clock.advance_ms(1000)
    s.poll()
    assert s.saves == 1
    r = env.store()
    assert (r.get("max_total_current"), r.get("reserve_current")) == (20148, 148)


def test_same_value_or_changed_back_writes_nothing(env):
    s = env.store()
    s.set("title", "Garage")
    s.flush()
    assert s.saves == 1
    for _ in range(1000):
        assert s.set("title", "Garage") is False
        env.clock.advance_ms(1000)
        s.poll()
    assert s.saves == 1 and not s.dirty
    s.set("title", "Carport")
    s.set("title", "Garage")  # reverted inside the window
    env.clock.advance_ms(200000)
    assert s.poll() is False and s.saves == 1 and not s.dirty


def test_commit_delay_is_a_setting(env):
    s = env.store()
    s.set("commit_delay_s", 10)
    s.set("title", "x")
    env.clock.advance_ms(10000)
    assert s.poll() is True


def test_flush_writes_pending_now_and_is_a_noop_when_clean(env):
    s = env.store()
    assert s.flush() is False
    s.set("lb_enabled", False)
    assert s.flush() is True and s.flush() is False
    assert env.store().get("lb_enabled") is False


def test_slots_alternate_and_newest_wins(env):
    s = env.store()
    for i in range(3):
        s.set("reserve_current", 100 + i)
        s.flush()
    assert [n for n in env.files() if n.startswith("lpconfig")] == list(SLOTS)
    r = env.store()
    assert r.get("reserve_current") == 102 and r.seq == 3


def test_set_many_is_all_or_nothing(env):
    s = env.store()
    with pytest.raises(ConfigError) as e:
        s.set_many({"title": "New", "modbus_id": 0})
    assert e.value.field == "modbus_id"
    assert s.get("title") == "LoadPilot" and not s.dirty
    assert sorted(s.set_many({"title": "New", "modbus_id": 5, "lb_enabled": True})) == ["modbus_id", "title"]


def test_bad_value_changes_nothing_and_names_field(env):
    s = env.store()
    with pytest.raises(ConfigError) as e:
        s.set("max_imbalance_current", "20A")
    assert str(e.value).startswith("max_imbalance_current: expected an integer")
    assert s.get("max_imbalance_current") == 20000 and not s.dirty
    with pytest.raises(ConfigError) as e:
        s.get("nope")
    assert str(e.value) == "nope: unknown key"


def test_volatile_values_never_mark_the_store_dirty(env):
    s = env.store()
    v = s.volatile
    for t in range(500):
        v.set("max_total_cur_prc", t % 101)
        v.set("cm_flag%d" % (1 + t % 32), t & 1)
        v.set("cm_var.surplus", t * 1.5)
        v.set("setpoint.E1.cur", 6000 + t)
        env.clock.advance_ms(1000)
        s.poll()
    assert not s.dirty and s.saves == 0 and env.files() == []
    assert v.get("max_total_cur_prc") == 499 % 101 and v.get("setpoint.E1.cur") == 6499
    assert v.get("cm_var.unset") is None
    with pytest.raises(ConfigError):
        s.set("max_total_cur_prc", 50)  # the persistent API refuses it
    with pytest.raises(ConfigError):
        v.set("cm_flag1", 2)
    with pytest.raises(ConfigError):
        v.set("cm_var.x", float("nan"))
    with pytest.raises(ConfigError):
        v.set("title", "x")
    assert env.store().volatile.get("max_total_cur_prc") == 100  # reboot: back to the default


def test_listeners_hear_changes(env):
    s = env.store()
    heard = []
    s.subscribe(heard.append)
    s.set("title", "a")
    s.set("title", "a")
    s.set_many({"reserve_current": 5, "title": "a"})
    assert heard == ["title", "reserve_current"]


def test_all_slots_corrupt_gives_defaults_log_and_files_kept_aside(env):
    env.write_slot(SLOTS[0], 4, {"title": "A"}, crc=1)
    with open(os.path.join(env.root, SLOTS[1]), "wb") as f:
        f.write(b"\x00garbage")
    s = env.store()
    assert s.get("title") == "LoadPilot"
    log = "\n".join(env.lines())
    assert "lpconfig.a unreadable: CRC mismatch; kept as lpconfig.a.bad" in log
    assert "lpconfig.b unreadable: not a configuration slot (bad header); kept as lpconfig.b.bad" in log
    assert "no readable stored configuration: using defaults" in log
    assert env.files() == ["lpconfig.a.bad", "lpconfig.b.bad"]
    s.set("title", "fresh")
    s.flush()
    assert env.store().get("title") == "fresh"


def test_torn_newer_slot_falls_back_to_older(env):
    env.write_slot(SLOTS[0], 7, {"title": "old"})
    env.write_slot(SLOTS[1], 8, {"title": "new"})
    path = os.path.join(env.root, SLOTS[1])
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-5])  # power lost before the end of the body
    s = env.store()
    assert s.get("title") == "old" and s.seq == 7
    assert any("lpconfig.b ignored: truncated" in l for l in env.lines())
    s.set("title", "newer")
    s.flush()  # overwrites the torn slot, not the good one
    assert env.store().get("title") == "newer"
    assert b"old" in open(os.path.join(env.root, SLOTS[0]), "rb").read()


def test_v1_file_is_migrated_and_rewritten(env):
    env.write_slot(SLOTS[0], 3, {"max_current": 40000, "lm_active": 1, "mqtt_host": "b.lan",
                                 "title": "Old house"}, version=1)
    s = env.store()
    assert s.get("max_total_current") == 40000 and s.get("lb_enabled") is True
    assert s.get("mqtt_url") == "mqtt://b.lan:1883" and s.get("title") == "Old house"
    assert any("lpconfig.a migrated v1->v2" in l for l in env.lines())
    assert s.dirty  # written back in the current format after the commit delay
    env.clock.advance_ms(150000)
    assert s.poll()
    head = open(os.path.join(env.root, SLOTS[1]), "rb").readline()
    assert head.startswith(b"LPCFG2 v=2 seq=4 ")


def test_file_from_newer_firmware_is_not_guessed_at(env):
    env.write_slot(SLOTS[0], 3, {"title": "future"}, version=schema.VERSION + 1)
    s = env.store()
    assert s.get("title") == "LoadPilot"
    assert any("newer firmware" in l for l in env.lines())
    assert "lpconfig.a.bad" in env.files()


def test_stored_field_that_no_longer_validates_falls_back_alone(env):
    env.write_slot(SLOTS[0], 1, {"title": "ok", "modbus_id": 999, "gone_key": 1})
    s = env.store()
    assert s.get("title") == "ok" and s.get("modbus_id") == 1
    log = "\n".join(env.lines())
    assert "modbus_id: out of range" in log and "gone_key: unknown key" in log


def test_installer_config_json_is_imported_once(env):
    cfg = {"title": "Carport", "max_total_current": 25000, "admin_pwd": "topsecret",
           "devices": [{"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse"}]}
    with open(os.path.join(env.root, "config.json"), "w") as f:
        json.dump(cfg, f)
    s = env.store()
    assert s.get("title") == "Carport" and s.get("devices")[0]["min_charging_cur"] == 6000
    assert s.saves == 1 and not s.dirty  # committed at once
    assert "config.json.imported" in env.files() and "config.json" not in env.files()
    log = "\n".join(env.lines())
    assert "config.json imported (4 settings: admin_pwd, devices, max_total_current, title)" in log
    assert "topsecret" not in log
    r = env.store()
    assert r.get("max_total_current") == 25000 and r.secret("admin_pwd") == "topsecret"


def test_bad_installer_file_keeps_defaults_and_names_the_field(env):
    cfg = {"title": "Carport", "devices": [{"dev_id": "M1", "driver": "meter_x", "role": 9}]}
    with open(os.path.join(env.root, "config.json"), "w") as f:
        json.dump(cfg, f)
    s = env.store()
    assert s.get("title") == "LoadPilot" and s.saves == 0
    assert any("config.json rejected: devices[0].role: out of range 0..6, got 9; keeping defaults; file kept "
               "as config.json.bad" in l for l in env.lines())
    assert env.files() == ["config.json.bad"]


@pytest.mark.parametrize("text, reason", [("{not json", "config.json: not valid JSON"),
                                          ('{"colour": 1}', "colour: unknown key"),
                                          ('[1, 2]', "config: expected a JSON object"),
                                          ('{"max_total_cur_prc": 50}', "max_total_cur_prc: volatile")])
def test_installer_file_errors(env, text, reason):
    with open(os.path.join(env.root, "config.json"), "w") as f:
        f.write(text)
    env.store()
    assert any(reason in l for l in env.lines()), env.lines()


def test_installer_file_ignored_when_a_store_exists(env):
    s = env.store()
    s.set("title", "stored")
    s.flush()
    with open(os.path.join(env.root, "config.json"), "w") as f:
        f.write('{"title": "installer"}')
    assert env.store().get("title") == "stored"
    assert any("config.json ignored: a stored configuration exists" in l for l in env.lines())


def test_secrets_never_in_view_repr_or_log(env, capsys):
    s = env.store()
    s.set_many({"admin_pwd": "hunter2-admin", "mqtt_url": "mqtts://lp:hunter2-mqtt@broker.lan"})
    s.flush()
    r = env.store()
    v = r.view()
    assert v["admin_pwd"] == "***" and v["mqtt_url"] == "mqtts://lp:***@broker.lan"
    shown = [json.dumps(v), repr(r), str(r), repr(r.get("admin_pwd")), str(r.get("mqtt_url")),
             "%s %r" % (r.get("admin_pwd"), r.get("mqtt_url")), repr(r.view()), "\n".join(env.lines()),
             capsys.readouterr().out]
    for text in shown:
        assert "hunter2" not in text, text
    with pytest.raises(ConfigError) as e:
        r.set("mqtt_url", "ftp://lp:hunter2-x@b")
    assert "hunter2" not in str(e.value)
    # the code that needs them still gets them
    assert r.secret("admin_pwd") == "hunter2-admin" and r.get("mqtt_url").reveal().endswith("@broker.lan")
    assert r.set("admin_pwd", r.get("admin_pwd")) is False  # a wrapped secret can be set back unchanged


def test_get_returns_a_copy_of_lists(env):
    s = env.store()
    s.set("devices", [{"dev_id": "E1", "driver": "evse_local", "address": "evse"}])
    got = s.get("devices")
    got[0]["prio"] = 99
    got.append({})
    assert s.get("devices")[0]["prio"] == 1 and len(s.get("devices")) == 1


def test_failed_save_is_logged_and_retried(env, tmp_path):
    blocker = tmp_path / "notadir"
    blocker.write_text("x")
    env.root = str(blocker)  # every open() under it fails
    s = env.store()
    s.set("title", "x")
    assert s.flush() is False and s.dirty and s.save_errors == 1
    assert any("save to lpconfig.a failed" in l and "retry in 150 s" in l for l in env.lines())
    env.clock.advance_ms(149000)
    assert s.poll() is False and s.save_errors == 1  # not hammering the flash
    env.clock.advance_ms(1000)
    s.poll()
    assert s.save_errors == 2


def test_flusher_task_commits_when_due(env):
    import asyncio
    s = env.store()
    s.set("commit_delay_s", 1)
    s.set("title", "async")
    env.clock.advance_ms(1000)

    async def run():
        t = asyncio.ensure_future(s.flusher())
        await asyncio.sleep(0.05)
        t.cancel()
    asyncio.run(run())
    assert s.saves == 1 and env.store().get("title") == "async"


def test_free_form_volatile_keys_are_capped(env):
    v = env.store().volatile
    for i in range(schema.MAX_VOLATILE_FREE):
        v.set("cm_var.v%d" % i, i)
    with pytest.raises(ConfigError) as e:
        v.set("cm_var.one_more", 1)
    assert "too many" in str(e.value)
    assert v.set("cm_var.v0", 5) is True  # existing keys still update
    assert v.set("max_total_cur_prc", 40) is True


def test_a_device_set_with_an_unknown_driver_changes_nothing_but_a_stored_one_still_boots(env):
    good = [{"dev_id": "E1", "driver": "evse_local", "address": "evse"}]
    s = env.store()
    s.set("devices", good)
    with pytest.raises(ConfigError) as e:
        s.set("devices", good + [{"dev_id": "E2", "driver": "wallbox9000", "address": "10.0.0.2:502"}])
    assert e.value.field == "devices[1].driver"
    with pytest.raises(ConfigError):
        s.set_many({"title": "x", "devices": [{"dev_id": "E2", "driver": "wallbox9000", "address": "10.0.0.2"}]})
    assert [d["dev_id"] for d in s.get("devices")] == ["E1"] and s.get("title") != "x"
    # a stored list from a firmware that knew "wallbox9000": the box boots with every device in it; the
    # device layer skips the one it cannot drive
    env.write_slot(SLOTS[0], 5, {"devices": good + [{"dev_id": "E2", "driver": "wallbox9000",
                                                     "address": "10.0.0.2:502"}]})
    assert [d["dev_id"] for d in env.store().get("devices")] == ["E1", "E2"]


# ---- size limit, damaged slots, installer file guards, redacted import record (issue 12)

from loadpilot.config.store import MAX_CONFIG_BYTES  # noqa: E402
from site_config import definition, full_site  # noqa: E402


def slot_body(env, name):
    data = open(os.path.join(env.root, name), "rb").read()
    return data[data.index(b"\n") + 1:]


def test_a_full_site_fits_and_comes_back_after_a_reboot(env):
    s = env.store()
    site = full_site()
    s.set_many(site)
    assert s.flush()
    assert 35000 < s.size < MAX_CONFIG_BYTES  # about 40 KB: the 43 KB site, with room for more
    assert len(slot_body(env, SLOTS[0])) == s.size  # the size the limit is checked against is what flash holds
    r = env.store()
    assert r.view() == s.view() and r.secret("mqtt_url") == site["mqtt_url"]
    assert len(r.get("devices")) == 50 and len(r.get("cm_vars")) == 32
    assert r.get("devices")[-1]["definition"] == site["devices"][-1]["definition"]


def test_a_change_that_would_exceed_the_limit_is_refused_and_changes_nothing(env):
    s = env.store()
    s.set_many(full_site())
    s.flush()
    before = (s.view(), s.size, s.dirty)
    bigger = s.get("devices")
    for d in bigger[25:]:  # every meter a user-defined one with a 4 KB definition: about 100 KB
        d.update(driver="meter_mqtt", address="mqtt", definition=definition(int(d["dev_id"][1:])), role=0)
        d.pop("id", None)
    with pytest.raises(ConfigError) as e:
        s.set("devices", bigger)
    assert e.value.field == "devices"
    assert "more than the 65536 the store keeps" in str(e.value) and "nothing changed" in str(e.value)
    with pytest.raises(ConfigError):
        s.set_many({"title": "renamed", "devices": bigger})
    assert (s.view(), s.size, s.dirty) == before
    assert s.set("title", "still settable") is True  # a change that fits still goes through
    s.flush()
    assert env.store().get("title") == "still settable"


def test_store_size_follows_every_change(env):
    s = env.store()
    for k, v in (("title", "Gärage ☀"), ("devices", full_site()["devices"][:3]), ("cm_vars", []),
                 ("devices", []), ("max_total_current", 63000)):
        s.set(k, v)
        s.flush()
        newest = SLOTS[(s.seq - 1) % 2]
        assert len(slot_body(env, newest)) == s.size, k


@pytest.mark.parametrize("damage, reason", [
    (lambda d: d.replace(b" seq=", b" sdq=", 1), "bad header: unexpected 'sdq=8'"),
    (lambda d: d.replace(b" v=2", b" w=2", 1), "bad header: unexpected 'w=2'"),
    (lambda d: d.replace(b" seq=8", b" seq=9", 1), "CRC mismatch"),  # a newer-looking seq is damage too
    (lambda d: d.replace(b" v=2", b" v=3", 1), "CRC mismatch"),
    (lambda d: d.replace(b" len=", b" len=9", 1), "too large"),
    (lambda d: d[:-100], "truncated"),
    (lambda d: d + b" ", "1 bytes longer than its header says"),
    (lambda d: d[:-3] + b"X" + d[-2:], "CRC mismatch"),
    (lambda d: d[:d.index(b"crc=") + 4] + b"G" + d[d.index(b"crc=") + 5:], "crc is not 8 hex digits"),
    (lambda d: b"", "empty"),
])
def test_any_damage_to_the_newest_slot_falls_back_to_the_other_and_is_never_saved_over(env, damage, reason):
    s = env.store()
    for seq in range(1, 8):
        s.set("title", "seq %d" % seq)
        s.flush()
    s.set("title", "newest")
    s.flush()
    assert s.seq == 8
    newest, intact = os.path.join(env.root, SLOTS[1]), os.path.join(env.root, SLOTS[0])
    data = open(newest, "rb").read()
    with open(newest, "wb") as f:
        f.write(damage(data))
    kept = open(intact, "rb").read()
    r = env.store()
    assert r.get("title") == "seq 7" and r.seq == 7
    assert any(l.startswith("lpconfig.b ignored: ") and reason in l for l in env.lines()), env.lines()
    assert not r.dirty
    r.set("reserve_current", 1000)
    assert r.flush()
    assert open(intact, "rb").read() == kept  # the save went over the damaged slot
    again = env.store()
    assert (again.get("title"), again.get("reserve_current"), again.seq) == ("seq 7", 1000, 8)


def test_a_slot_of_the_format_before_the_header_crc_is_still_read(env):
    env.write_slot(SLOTS[0], 3, {"title": "old format"})
    s = env.store()
    assert s.get("title") == "old format" and s.seq == 3


def test_a_bug_while_loading_keeps_both_slots_out_of_reach_of_the_next_save(env, monkeypatch):
    s = env.store()
    s.set("title", "kept")
    s.flush()
    monkeypatch.setattr(Store, "load", lambda self: 1 / 0)
    r = env.store()
    assert r.get("title") == "LoadPilot"
    assert any("loading failed (ZeroDivisionError" in l for l in env.lines())
    r.set("title", "new")
    r.flush()
    assert b"kept" in open(os.path.join(env.root, SLOTS[0] + ".bad"), "rb").read()


def write_installer(env, data):
    with open(os.path.join(env.root, "config.json"), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


@pytest.mark.parametrize("name, make, reason", [
    ("garbage", lambda p: open(p, "wb").write(bytes(range(256)) * 10), "config.json: not valid JSON"),
    ("5 MB", lambda p: open(p, "wb").truncate(5 * 1024 * 1024), "config.json: too large (5242880 bytes, at most"),
    ("nested 1,000 deep", lambda p: open(p, "w").write('{"title": ' + "[" * 1000 + "]" * 1000 + "}"),
     "config.json: nested deeper than 32 levels"),
    ("not an object", lambda p: open(p, "w").write('"LoadPilot"'), "config: expected a JSON object"),
    ("invalid field", lambda p: open(p, "w").write('{"max_total_current": -1}'), "max_total_current: out of range"),
    ("brackets inside strings", lambda p: open(p, "w").write('{"title": "\\"' + "[{" * 20 + '", "colour": 1}'),
     "colour: unknown key"),
    ("over the size limit", lambda p: open(p, "w").write(json.dumps(dict(full_site(), devices=[
        {"dev_id": "M%d" % i, "driver": "meter_mqtt", "address": "mqtt", "definition": definition(i)}
        for i in range(1, 26)]))), "more than the 65536 the store keeps"),
])
def test_an_installer_file_that_cannot_be_imported_is_renamed_bad_and_never_retried(env, name, make, reason):
    make(os.path.join(env.root, "config.json"))
    s = env.store()
    assert s.view() == _public_defaults() and s.saves == 0 and not s.dirty
    rejected = [l for l in env.lines() if l.startswith("config.json rejected: ")]
    assert len(rejected) == 1 and reason in rejected[0], rejected
    assert rejected[0].endswith("; keeping defaults; file kept as config.json.bad")
    assert env.files() == ["config.json.bad"]
    env.store()  # the next boot does not try it again
    assert len([l for l in env.lines() if "config.json" in l]) == 1


def test_imported_record_holds_no_secret(env):
    site = full_site()
    site["mqtt_api_url"] = "mqtts://api:api-secret@192.168.10.3"
    write_installer(env, json.dumps(site, indent=2))  # pretty-printed, as installers write it
    s = env.store()
    assert s.saves == 1 and len(s.get("devices")) == 50
    assert env.files() == ["config.json.imported", "lpconfig.a"]
    record = open(os.path.join(env.root, "config.json.imported")).read()
    for secret in ("site-secret", "admin-secret", "api-secret", "pw-22", "pw-25"):
        assert secret not in record and secret not in "\n".join(env.lines())
    shown = json.loads(record)
    assert sorted(shown) == sorted(site)
    assert shown["admin_pwd"] == "***" and shown["mqtt_url"] == "mqtt://lp:***@192.168.10.2:1883"
    assert shown["devices"][-1]["address"] == "mqtt://meter:***@192.168.10.2:1883"
    assert shown["devices"][0] == s.get("devices")[0]
    assert any("config.json imported (9 settings: " in l and "file kept as config.json.imported with secrets "
               "redacted" in l for l in env.lines())
    assert env.store().secret("admin_pwd") == "admin-secret-0"  # the store itself keeps them


def test_a_save_that_fails_midway_keeps_the_intact_slot_and_is_retried(env, monkeypatch):
    from loadpilot.config import store as store_mod
    s = env.store()
    s.set("title", "kept")
    s.flush()
    s.set("title", "new")
    real, calls = store_mod.json.dumps, []

    def dumps(v):
        if v == "new":
            calls.append(v)
            if len(calls) == 2:  # the counting pass went through; the heap runs out while writing
                raise MemoryError()
        return real(v)
    monkeypatch.setattr(store_mod.json, "dumps", dumps)
    assert s.flush() is False and s.dirty and s.save_errors == 1
    assert any("save to lpconfig.b failed (MemoryError); retry in 150 s" in l for l in env.lines())
    r = env.store()  # a reboot now: the half-written slot is ignored
    assert r.get("title") == "kept" and any("lpconfig.b ignored: truncated" in l for l in env.lines())
    env.clock.advance_ms(150000)
    assert s.poll() is True
    assert env.store().get("title") == "new"
def test_a_proxy_setting_that_collides_is_refused_and_changes_nothing(env):
    s = env.store()
    s.ports = ["COM1"]
    assert s.set("modbus_proxy", "5-7@com1") is True and s.get("modbus_proxy") == "5-7@COM1"
    for key, value, reason in (("modbus_proxy", "1@COM1", "SunSpec server"), ("modbus_proxy", "8@COM2", "no COM2"),
                               ("modbus_id", 6, "conflicts with modbus_proxy"),
                               ("slave_rtu_port", "COM1,9600,8,n,1", "slave port")):
        with pytest.raises(ConfigError) as e:
            s.set(key, value)
        assert e.value.field == key and reason in e.value.reason
    with pytest.raises(ConfigError) as e:
        s.set_many({"title": "x", "modbus_id": 4})  # all or nothing
    assert e.value.field == "modbus_id"
    assert s.get("title") == "LoadPilot" and s.get("modbus_id") == 1 and s.get("modbus_proxy") == "5-7@COM1"
    assert s.set_many({"modbus_id": 4, "modbus_proxy": "8@COM1"}) == ["modbus_id", "modbus_proxy"]


SMALL_BOARD = {"sockets": 10, "s0_ports": 2, "evse": True, "board": "esp32_devkit"}


def test_a_configuration_past_the_socket_budget_is_refused_when_set_and_changes_nothing(env):
    s = Store(env.root, env.log, env.clock, budget=SMALL_BOARD)
    assert s.set("pb_tcp_port", 0) is True  # the defaults open 4 servers (12 sockets): this frees 9
    hosts = [{"dev_id": "M%d" % i, "driver": "meter_sdm630", "address": "10.0.0.%d" % i} for i in range(1, 9)]
    assert s.set_many({"devices": hosts}) == ["devices"]  # 6 connected, 2 per poll on the tenth socket
    with pytest.raises(ConfigError) as e:
        s.set_many({"title": "x", "pb_tcp_port": 4701})
    assert e.value.field == "pb_tcp_port" and "would need 13 sockets, board esp32_devkit has 10" in str(e.value)
    assert s.get("title") == "LoadPilot" and s.get("pb_tcp_port") == 0
    assert s.set("omcci_tcp_port", 502) is True  # 6 for two servers, 4 for the 8 hosts (3 + 1 shared)


def test_an_installer_file_past_the_socket_budget_is_rejected_whole(env):
    with open(os.path.join(env.root, "config.json"), "w") as f:
        json.dump({"title": "site", "pb_tcp_port": 0, "omcci_tcp_port": 502, "modbus_tcp_port": 1502,
                   "mqtt_api_url": "mqtt://10.0.0.2", "mqtt_log_url": "mqtt://10.0.0.3",
                   "devices": [{"dev_id": "M1", "driver": "meter_sdm630", "address": "10.0.0.7"},
                               {"dev_id": "M2", "driver": "meter_sdm630", "address": "10.0.0.8"}]}, f)
    s = Store(env.root, env.log, env.clock, budget=dict(SMALL_BOARD, sockets=7))
    assert s.get("title") == "LoadPilot" and s.get("omcci_tcp_port") == 0
    assert any("config.json rejected: modbus_tcp_port: the configuration would need 9 sockets, board esp32_devkit "
               "has 7" in l and "MQTT broker of mqtt_log_url: 1" in l for l in env.lines()), env.lines()
    assert env.files() == ["config.json.bad"]
