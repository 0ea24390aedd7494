# The one command layer. Every transport hands its request here: Modbus writes to 60000-60002 and 8000+,
# MQTT api/<query>, HTTP /cnf?cmd=..., OCPP. A command validates everything first, then changes parameters
# (through the config store, which persists them later) or volatile values. It never touches hardware or a
# bus. A refused command raises CommandError and has changed nothing; each transport turns that into its own
# answer (Modbus exception 03, api_res JSON error, HTTP 400).
import json

from loadpilot.config.schema import ConfigError, is_volatile

N_FLAGS = 32


class CommandError(ValueError):
    pass


def parse_query(query):
    """'cmd=set_cm_vars&name=x&val=1' -> dict of strings (percent-decoding for the characters we need)."""
    out = {}
    for part in query.lstrip("?").split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out[_unquote(k)] = _unquote(v)
    return out


def _unquote(s):
    if "%" not in s and "+" not in s:
        return s
    s = s.replace("+", " ")
    b = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "%" and i + 3 <= len(s):
            try:
                b.append(int(s[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        b.extend(c.encode())
        i += 1
    return b.decode()


def _number(text, name):
    try:
        x = float(text)
    except (TypeError, ValueError):
        raise CommandError("%s: expected a number, got %r" % (name, text))
    if x != x or x in (float("inf"), float("-inf")):
        raise CommandError("%s: expected a finite number" % name)
    return x


# local charge point overrides: key -> (low, high) inclusive, in mA / s / counts
EVSE_KEYS = {
    "charging_cur_limit_ma": (6000, 63000),
    "fixed_current_ma": (0, 63000),       # 0: no override of the cable current
    "charging_enable": (0, 1),
    "available": (0, 1),
    "hems_current_limit_ma": (0, 80000),  # 0: no charging
    "relay_select": (0, 1),               # 0 = 3-phase contactor, 1 = 1-phase
    "relay2": (0, 1),
    "disconnect_cp_s": (0, 3600),
}


class Commands:
    def __init__(self, store, log, evse_control=None):
        self.store = store
        self.log = log
        self.evse_control = evse_control
        self.fixed_vars = set()  # variables whose formula was dropped by a write (volatile, like the value)
        self._handlers = {
            "get_params": self._q_get_params,
            "set_params": self._q_set_params,
            "get_cm_vars": self._q_get_cm_vars,
            "set_cm_vars": self._q_set_cm_vars,
        }

    # ---- typed commands (Modbus and internal callers)

    def set_params(self, values):
        """Persistent keys go to the store (saved within the commit delay), volatile keys (max_total_cur_prc,
        cm_flagN) stay in RAM. All or nothing. -> list of changed keys."""
        if not isinstance(values, dict) or not values:
            raise CommandError("set_params: expected a non-empty JSON object")
        persistent = {}
        volatile = {}
        for k in values:
            (volatile if is_volatile(k) else persistent)[k] = values[k]
        try:
            if volatile:
                self._check_volatile(volatile)
            changed = self.store.set_many(persistent) if persistent else []
            if volatile:
                self.store.volatile.set_many(volatile)
        except ConfigError as e:
            raise CommandError(str(e))
        return changed + list(volatile)

    def _check_volatile(self, values):
        from loadpilot.config.schema import validate_volatile
        for k in values:
            if k.startswith("cm_var."):
                raise ConfigError(k, "use set_cm_vars for variables")
            validate_volatile(k, values[k])

    def set_flag(self, index, value):
        """index 0..31 (CM._flag1 is index 0); value 0 or 1."""
        if not 0 <= index < N_FLAGS or value not in (0, 1):
            raise CommandError("flag: index 0..31 and value 0 or 1")
        self.store.volatile.set("cm_flag%d" % (index + 1), value)

    def set_cm_var(self, name, value):
        """Fix variable name at value: its formula is dropped until the next boot (values are never saved)."""
        if name not in self.var_names():
            raise CommandError("set_cm_vars: unknown variable %r" % name)
        try:
            self.store.volatile.set("cm_var." + name, value)
        except ConfigError as e:
            raise CommandError(str(e))
        self.fixed_vars.add(name)

    def evse_set(self, values):
        """Overrides for the local charge point (Power Brain 8086-8094, OMCCI 124/1000, MQTT ctl). Volatile;
        all or nothing. The slave service applies them to the EVSE within one refresh."""
        c = self.evse_control
        if c is None:
            raise CommandError("this board has no local charge point")
        for k in values:
            lim = EVSE_KEYS.get(k)
            v = values[k]
            if lim is None:
                raise CommandError("evse: unknown setting %r" % k)
            if isinstance(v, bool) or not isinstance(v, int) or not lim[0] <= v <= lim[1]:
                raise CommandError("evse: %s must be an integer %d..%d, got %r" % (k, lim[0], lim[1], v))
        for k in values:
            v = values[k]
            if k == "charging_cur_limit_ma":
                c.cur_limit_ma = v
            elif k == "fixed_current_ma":
                c.fixed_ma = v or None
            elif k == "charging_enable":
                c.enable = v
            elif k == "available":
                c.available = v
            elif k == "hems_current_limit_ma":
                c.hems_ma = v
            elif k == "relay_select":
                c.phases_request = 1 if v else 3
            elif k == "relay2":
                c.relay2 = v
            elif k == "disconnect_cp_s":
                c.wakeup_s = v

    def var_names(self):
        try:
            defs = self.store.get("cm_vars")
        except (ConfigError, KeyError):
            return []
        return [d["name"] for d in defs]

    def params_view(self):
        view = self.store.view()
        view.update(self.store.volatile.view())
        return view

    # ---- the query interface (HTTP /cnf?..., MQTT api/<query>)

    def execute(self, query, body=None):
        """query: 'cmd=...&k=v'; body: POST/MQTT payload (str or bytes) or None. -> JSON-able result.
        Raises CommandError with a message that names what was wrong."""
        args = parse_query(query)
        cmd = args.get("cmd")
        fn = self._handlers.get(cmd)
        if fn is None:
            raise CommandError("unknown command %r" % (cmd,))
        payload = None
        if body:
            if isinstance(body, (bytes, bytearray, memoryview)):
                body = bytes(body).decode()
            try:
                payload = json.loads(body)
            except ValueError:
                raise CommandError("%s: body is not valid JSON" % cmd)
        return fn(args, payload)

    def _q_get_params(self, args, payload):
        return self.params_view()

    def _q_set_params(self, args, payload):
        if payload is None:
            payload = {}
            for k in args:
                if k != "cmd":
                    payload[k] = _json_value(args[k])
        changed = self.set_params(payload)
        return {"ok": True, "changed": changed}

    def _q_get_cm_vars(self, args, payload):
        out = {}
        for name in self.var_names():
            out[name] = self.store.volatile.get("cm_var." + name)
        return out

    def _q_set_cm_vars(self, args, payload):
        if payload is not None:
            if not isinstance(payload, dict):
                raise CommandError("set_cm_vars: expected a JSON object of name: value")
            pairs = list(payload.items())
        else:
            if "name" not in args or "val" not in args:
                raise CommandError("set_cm_vars: needs name and val")
            pairs = [(args["name"], args["val"])]
        checked = []
        names = self.var_names()
        for name, val in pairs:
            if name not in names:
                raise CommandError("set_cm_vars: unknown variable %r" % name)
            checked.append((name, _number(val, name)))
        for name, x in checked:
            self.set_cm_var(name, x)
        return {"ok": True}


def _json_value(text):
    # query-string values: numbers and true/false as JSON, anything else as a string
    try:
        return json.loads(text)
    except ValueError:
        return text
