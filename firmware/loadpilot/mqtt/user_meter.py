# User-defined meters read over MQTT (rtype 2, reference/user-defined-meters.md): each variable names a
# topic ("address"), a query into the JSON published there, a type and a resolution. Known variables
# (currents in mA, voltages in V, power in W/VA, energy in Wh, soc) become the device's site reading; a
# meter whose topics stay silent longer than the meter timeout counts as failed in the Charging Manager.
from loadpilot.api import json_in
from loadpilot.devices.definition import DefinitionError, check_common


def parse_query(text):
    """'a.b[0]["u2"][{"k": "v"}].value' -> steps: ("key", name), ("index", n) or ("match", dict)."""
    steps = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == ".":
            i += 1
            continue
        if c == "[":
            depth = 0
            j = i
            while j < n:
                if text[j] in "[{":
                    depth += 1
                elif text[j] in "]}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise DefinitionError("query %r: unclosed [" % text)
            inner = text[i + 1:j].strip()
            if inner.startswith("{"):
                try:
                    cond = json_in.loads(inner)
                except ValueError:
                    raise DefinitionError("query %r: bad condition %s" % (text, inner))
                steps.append(("match", cond))
            elif inner.startswith('"') or inner.startswith("'"):
                steps.append(("key", inner[1:-1]))
            else:
                try:
                    steps.append(("index", int(inner)))
                except ValueError:
                    steps.append(("key", inner))
            i = j + 1
            continue
        j = i
        while j < n and text[j] not in ".[":
            j += 1
        steps.append(("key", text[i:j]))
        i = j
    if not steps:
        raise DefinitionError("empty query")
    return steps


def run_query(steps, obj):
    """The value the steps lead to, or None if the JSON does not have it."""
    for kind, arg in steps:
        if kind == "key":
            if not isinstance(obj, dict) or arg not in obj:
                return None
            obj = obj[arg]
        elif kind == "index":
            if isinstance(obj, list) and -len(obj) <= arg < len(obj):
                obj = obj[arg]
            elif isinstance(obj, dict) and str(arg) in obj:
                obj = obj[str(arg)]
            else:
                return None
        else:
            if not isinstance(obj, list):
                return None
            for el in obj:
                if isinstance(el, dict) and all(el.get(k) == v for k, v in arg.items()):
                    obj = el
                    break
            else:
                return None
    return obj


class Variable:
    def __init__(self, name, spec):
        self.name = name
        self.fixed = spec.get("fixed")
        self.topic = spec.get("address")
        self.resolution = spec.get("resolution", 1)
        self.type = spec.get("type", "float")
        if self.fixed is None:
            if not isinstance(self.topic, str) or not self.topic:
                raise DefinitionError("%s: needs an address (the MQTT topic) or fixed" % name)
            self.steps = parse_query(spec.get("query", name))
        self.value = self.fixed

    def take(self, obj):
        v = run_query(self.steps, obj)
        if v is None:
            return False
        if self.type == "string":
            self.value = str(v)
            return True
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            try:
                v = float(v)
            except (TypeError, ValueError):
                return False
        if v != v or v in (float("inf"), float("-inf")):
            return False
        self.value = v * self.resolution
        return True


class UserMeter:
    def __init__(self, dev_id, definition, site, log=None):
        self.dev_id = dev_id
        self.site = site
        self.log = log
        self.vars = [Variable(name, spec) for name, spec in check_common(dev_id, definition, 2)]
        self.messages = 0
        self.bad_messages = 0
        self._topics = []
        for v in self.vars:
            if v.topic and v.topic not in self._topics:
                self._topics.append(v.topic)
        self.key = None      # what it was built from (address, definition): a changed one is built anew
        self.client = None   # the MQTT connection its topics arrive on

    def topics(self):
        return self._topics

    def on_message(self, msg, now_ms=None):
        try:
            if msg.payload is None:  # the client skipped it: over its packet buffer
                raise ValueError("%d bytes is over the MQTT packet limit" % msg.size)
            obj = json_in.loads(msg.payload)  # size, depth and key limits as for every JSON input
        except ValueError as e:
            self.bad_messages += 1
            if self.log:
                self.log.warn("mqtt", "%s: message on %s refused: %s" % (self.dev_id, msg.topic, e))
            return
        took = False
        for v in self.vars:
            if v.topic == msg.topic and v.take(obj):
                took = True
        if took:
            self.messages += 1
            self.push(now_ms)

    def value(self, name):
        for v in self.vars:
            if v.name == name:
                return v.value
        return None

    def push(self, now_ms=None):
        """Hand the known variables to the site as this device's reading."""
        import time
        g = self.value
        reading = {}
        cur = [g("current_l1"), g("current_l2"), g("current_l3")]
        if any(c is not None for c in cur):
            reading["current_ma"] = [int(c or 0) for c in cur]
        volt = [g("voltage_l1"), g("voltage_l2"), g("voltage_l3")]
        if any(v is not None for v in volt):
            reading["voltage_v"] = [int(v or 0) for v in volt]
        pw = [g("power_w_l1"), g("power_w_l2"), g("power_w_l3")]
        if any(p is not None for p in pw):
            reading["phase_w"] = [int(p or 0) for p in pw]
        for key, name in (("power_w", "power_w"), ("power_va", "power_va"), ("import_wh", "import_wh"),
                          ("export_wh", "export_wh")):
            if g(name) is not None:
                reading[key] = int(g(name))
        if g("soc") is not None:
            reading["soc_pct"] = int(g("soc"))
        self.site.push({self.dev_id: reading}, now_ms if now_ms is not None else time.ticks_ms())
