import json

import pytest

from loadpilot.mqtt.user_meter import DefinitionError, UserMeter, parse_query, run_query
from loadpilot.site import Site


class Msg:
    def __init__(self, topic, payload):
        self.topic = topic
        self.payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()


@pytest.mark.parametrize("query, expect", [
    ("power_w", 1234),
    ("emeters[1].power", -50.5),
    ('emeters[{"name": "b"}].power', -50.5),
    ('meta["u2"]', 7),
    ("meta.u2", 7),
    ("missing.x", None),
    ("emeters[5].power", None),
])
def test_query_language(query, expect):
    doc = {"power_w": 1234, "emeters": [{"name": "a", "power": 10}, {"name": "b", "power": -50.5}],
           "meta": {"u2": 7}}
    assert run_query(parse_query(query), doc) == expect


def shelly_like():
    return {"rtype": 2, "mtype": 1, "manufacturer": "Test",
            "power_w": {"address": "shellies/em/status", "type": "float", "query": "emeters[0].power"},
            "current_l1": {"address": "shellies/em/status", "type": "float", "query": "emeters[0].current",
                           "resolution": 1000},
            "voltage_l1": {"address": "shellies/em/status", "type": "float", "query": "emeters[0].voltage"},
            "import_wh": {"address": "shellies/em/energy", "type": "float", "query": "total", "resolution": 1000},
            "type_designation": {"fixed": "Shelly EM"}}


def test_messages_become_the_device_reading():
    site = Site()
    site.configure(["M3"])
    m = UserMeter("M3", shelly_like(), site)
    assert m.topics() == ["shellies/em/status", "shellies/em/energy"]
    m.on_message(Msg("shellies/em/status", {"emeters": [{"power": 1840.0, "current": 8.0, "voltage": 230.0}]}), 1000)
    m.on_message(Msg("shellies/em/energy", {"total": 12.5}), 1100)
    r = site.device("M3").reading
    assert (r.current_ma[0], r.voltage_v[0], r.power_w, r.import_wh, r.updated_ms) == (8000, 230, 1840, 12500, 1100)
    m.on_message(Msg("shellies/em/status", b"{broken"), 1200)
    m.on_message(Msg("shellies/em/status", {"unrelated": 1}), 1300)
    assert r.updated_ms == 1100 and m.bad_messages == 1 and r.power_w == 1840


@pytest.mark.parametrize("defn, msg", [
    ({"rtype": 0, "power_w": {"address": 100}}, "rtype 2"),
    ({"rtype": 2, "power_w": {"type": "float"}}, "needs an address"),
    ({"rtype": 2, "power_w": {"address": "t", "type": "double"}}, "type must be one of"),
    ({"rtype": 2, "power_w": {"address": "t", "expr": "M1.power_w * 2"}}, "not supported yet"),
    ({"rtype": 2, "power_w": {"address": "t", "query": "a[0"}}, "unclosed"),
])
def test_bad_definitions_are_refused_with_the_variable_named(defn, msg):
    with pytest.raises(DefinitionError) as e:
        UserMeter("M3", defn, Site())
    assert msg in str(e.value)
