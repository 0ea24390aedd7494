"""Device-addressed commands (HTTP-input data, enter_rfid, override_device, ctl) and the get_dev_info views."""
import json

import pytest

from loadpilot.api.commands import CommandError, Commands
from loadpilot.api.dev_info import DevInfo
from loadpilot.config.store import Store
from loadpilot.evse.control import EvseControl
from loadpilot.log import Log
from loadpilot.manager_cycle import ManagerCycle
from loadpilot.site import Site

DEVICES = [{"dev_id": "E2", "driver": "http_input", "address": "mqtt", "max_charging_cur": 20000},
           {"dev_id": "E3", "driver": "mqtt_input", "address": "mqtt://u:topsecret@10.0.0.2"},
           {"dev_id": "M2", "driver": "http_input", "address": "mqtt"}]


def make(tmp_path, devices=DEVICES, lb=False):
    store = Store(str(tmp_path), Log(console_level=100))
    store.set_many({"devices": devices, "lb_enabled": lb})
    store.flush()
    cmds = Commands(store, store.log, EvseControl(store))
    site = Site()
    site.local_id = "E1"  # the board's own charge point, not in the device list
    site.configure(["E1"] + [d["dev_id"] for d in devices])
    cmds.site = site
    cmds.dev_info = DevInfo(store, site, cmds)
    cmds.manager = ManagerCycle(store, site, store.log, setpoints=cmds.setpoints, overrides=cmds.overrides)
    return cmds


def pushed(cmds, dev_id, obj):
    """An HTTP-input message, the manager's next cycle, and the answer the next message gets."""
    cmds.http_input(dev_id, obj)
    cmds.manager.cycle(0)
    return cmds.http_input(dev_id, obj)


@pytest.fixture
def cmds(tmp_path):
    return make(tmp_path)


def test_http_input_meter_and_wallbox(cmds):
    assert cmds.http_input("M2", {"model": "TestModell", "import_wh": 12345, "export_wh": 23456,
                                  "voltage": [231, 232, 233], "current": [10001, 10002, 10003]}) == {"ok": True}
    m = cmds.dev_info.device(cmds.dev_info.config_of("M2"))
    assert (m["import"], m["export"], m["voltage_l3"], m["current_l1"], m["model"], m["com_err"]) == \
        (12345, 23456, 233, 10001, "TestModell", False)
    assert m["power_w"] == 231 * 10001 // 1000 + 232 * 10002 // 1000 + 233 * 10003 // 1000  # V x I per phase
    cmds.http_input("M2", {"power_w": 1500, "is_va": True})
    assert cmds.site.device("M2").reading.power_va == 1500
    ans = pushed(cmds, "E2", {"state": 3, "current": [16000], "total_energy": 99, "rfid": "0a0b0c42"})
    # observation mode, no ctl set-point: the box's own maximum under the house connection
    assert ans == {"device_enabled": True, "charging_enabled": True, "paused": False, "charging_current": 20000}
    e = cmds.dev_info.device(cmds.dev_info.config_of("E2"))
    assert (e["state"], e["total_energy"], e["phases"], e["rfid"]) == (3, 99, 1, "0A0B0C42")  # the normal form


@pytest.mark.parametrize("dev_id, obj, msg", [
    ("M2", {"import_wh": "12"}, "import_wh"),
    ("M2", {"import_wh": True}, "import_wh"),
    ("M2", {"current": [1, 2, 3, 4]}, "current"),
    ("M2", {"voltage": [float("nan")]}, "voltage"),
    ("M2", {"is_va": 1}, "is_va"),
    ("M2", [1], "JSON object"),
    ("E2", {"state": 7}, "state"),
    ("E2", {"state": 3, "max_charging_current": -1}, "max_charging_current"),
    ("E2", {"state": 3, "rfid": "42"}, "not a valid ID"),
    ("E3", {"state": 1}, "not an HTTP-input device"),
    ("M9", {}, "unknown device"),
])
def test_bad_http_input_changes_nothing(cmds, dev_id, obj, msg):
    cmds.http_input("M2", {"import_wh": 5})
    before = cmds.dev_info.whole()["devices"]
    with pytest.raises(CommandError) as e:
        cmds.http_input(dev_id, obj)
    assert msg in str(e.value)
    assert cmds.dev_info.whole()["devices"] == before


def test_override_and_rfid_take_effect_and_end_at_unplug(cmds):
    assert cmds.execute("cmd=enter_rfid&rfid=56781234&dev_id=E2") == {"ok": True, "dev_id": "E2"}
    assert cmds.execute("cmd=override_device&dev_id=E2&flags=C&mamps=8000") == {"ok": True}
    ans = pushed(cmds, "E2", {"state": 2})
    assert ans["charging_current"] == 0 and ans["charging_enabled"] is False
    assert cmds.execute("cmd=override_device&dev_id=E2&flags=c")["ok"]
    ans = pushed(cmds, "E2", {"state": 2})
    assert ans["charging_enabled"] is True and ans["charging_current"] == 8000  # mamps lasts the transaction
    pushed(cmds, "E2", {"state": 1})  # unplugged: the override ends
    assert pushed(cmds, "E2", {"state": 2})["charging_current"] == 20000
    assert cmds.overrides == {}
    for q in ("cmd=enter_rfid&rfid=12ab&dev_id=E2", "cmd=enter_rfid&rfid=1&dev_id=M2",
              "cmd=override_device&dev_id=E2&flags=X", "cmd=override_device&dev_id=E2&mamps=-5",
              "cmd=enter_rfid&rfid=5678",  # a 2-byte PIN: not a valid ID
              "cmd=enter_rfid&rfid=11223344"):  # two wallboxes: no automatic assignment
        with pytest.raises(CommandError):
            cmds.execute(q)


def test_ctl_all_or_nothing_and_only_in_observation_mode(cmds, tmp_path):
    cmds.ctl({"E1": {"cur": 10000, "ena": False, "wke": True, "phs": 1}, "E2": {"cur": 7000, "ena": True}})
    c = cmds.evse_control
    assert (c.cur_limit_ma, c.enable, c.wakeup_s, c.phases_request) == (10000, 0, 3, 1)
    assert cmds.store.volatile.get("setpoint.E2.cur") == 7000 and cmds.store.volatile.get("setpoint.E2.ena") == 1
    assert pushed(cmds, "E2", {"state": 2})["charging_current"] == 7000
    for bad in ({"E1": {"cur": 12000}, "E2": {"cur": 5999}}, {"E1": {"ena": 0}}, {"E2": {"phs": 2}},
                {"M2": {"cur": 8000}}, {"E9": {}}, {"E1": {"xyz": 1}}, [], {}):
        with pytest.raises(CommandError):
            cmds.ctl(bad)
    assert c.cur_limit_ma == 10000 and cmds.store.volatile.get("setpoint.E2.cur") == 7000
    lb = make(tmp_path / "lb", lb=True)
    with pytest.raises(CommandError) as e:
        lb.ctl({"E1": {"cur": 8000}})
    assert "observation mode" in str(e.value)


def _stream(info):
    from loadpilot.api.dev_info_stream import DevInfoStream
    s = DevInfoStream(info)
    measured = list(s.measure())
    return s, measured, b"".join(bytes(x) for x in s.parts())


def test_dev_info_streams_in_bounded_chunks_for_25_wallboxes_and_8_meters(tmp_path):
    devs = [{"dev_id": "E%d" % i, "driver": "http_input", "address": "mqtt", "name": "Wallbox %d" % i}
            for i in range(1, 26)]
    devs += [{"dev_id": "M%d" % i, "driver": "http_input", "address": "mqtt"} for i in range(1, 9)]
    cmds = make(tmp_path, devs)
    s, measured, doc = _stream(cmds.dev_info)
    assert len(doc) == s.length  # the length MQTT sends first is the length of what follows
    whole = json.loads(doc)
    assert len(whole["devices"]) == 33 and whole["devices"][24]["name"] == "Wallbox 25"
    assert whole["devices"] == cmds.dev_info.whole()["devices"]
    biggest = max(len(bytes(p)) for p in s.parts())
    print("dev_info: %d bytes, largest piece %d" % (len(doc), biggest))
    assert biggest < 1024 < len(doc)  # no piece is more than one device: the document is never held whole


def test_each_device_measured_is_that_device_for_its_get_topic(cmds):
    # MQTT get/<dev_id> sends the piece the first pass rendered instead of rendering the device a third time
    s, measured, _ = _stream(cmds.dev_info)
    configs = cmds.dev_info.configs()
    assert [d["dev_id"] for d in configs] == ["E1", "E2", "E3", "M2"]  # the board's own box first
    assert [i for i, _ in measured] == [-1, 0, 1, 2, 3]
    for i, piece in measured[1:]:
        assert json.loads(piece) == cmds.dev_info.device(configs[i])
    assert cmds.dev_info.store.peek("devices") is cmds.dev_info.store.peek("devices")  # read without a copy


def test_figures_that_grow_between_the_passes_keep_the_announced_length(cmds):
    from loadpilot.api.dev_info_stream import PAD, DevInfoStream
    info = cmds.dev_info
    s = DevInfoStream(info)
    for _ in s.measure():
        pass
    real = info.device
    grow = {"E2": "x" * (PAD - 10), "E3": "y" * (PAD + 10)}  # within the reservation, and past it
    info.device = lambda d: dict(real(d), name=grow.get(d["dev_id"], real(d)["name"]))
    doc = b"".join(bytes(x) for x in s.parts())
    assert len(doc) == s.length
    devices = json.loads(doc)["devices"]
    assert devices[1]["name"] == "x" * (PAD - 10)  # grew within PAD: sent as it is now
    assert devices[2] is None  # grew past PAD: null keeps the document valid JSON of the announced length
    assert devices[3]["dev_id"] == "M2"


def test_dev_info_redacts_passwords_in_addresses(cmds):
    e3 = cmds.dev_info.device(cmds.dev_info.config_of("E3"))
    assert "topsecret" not in json.dumps(e3) and e3["address"] == "mqtt://u:***@10.0.0.2"
    assert "topsecret" not in _stream(cmds.dev_info)[2].decode()
