# The one command layer. Every transport hands its request here: Modbus writes to 60000-60002 and 8000+,
# MQTT api/<query>, HTTP /cnf?cmd=..., OCPP. A command validates everything first, then changes parameters
# (through the config store, which persists them later) or volatile values. It never touches hardware or a
# bus. A refused command raises CommandError and has changed nothing; each transport turns that into its own
# answer (Modbus exception 03, api_res JSON error, HTTP 400).
from loadpilot.config.schema import ConfigError, is_volatile, shown_key
from loadpilot.redact import redact

N_FLAGS = 32


class CommandError(ValueError):
    pass


class Denied(CommandError):
    """The caller lacks the rights (HTTP 403). guess: a wrong user ID/PIN, which the HTTP login counts like a
    wrong password (its growing per-client delay), so a PIN is guessed no faster than the admin password."""

    def __init__(self, message, guess=False):
        super().__init__(message)
        self.guess = guess


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
EVSE_KEYS = (  # (key, low, high): a constant table, not a dict built at import
    ("charging_cur_limit_ma", 6000, 63000),
    ("fixed_current_ma", 0, 63000),       # 0: no override of the cable current
    ("charging_enable", 0, 1),
    ("available", 0, 1),
    ("hems_current_limit_ma", 0, 80000),  # 0: no charging
    ("relay_select", 0, 1),               # 0 = 3-phase contactor, 1 = 1-phase
    ("relay2", 0, 1),
    ("disconnect_cp_s", 0, 3600),
)


class Commands:
    def __init__(self, store, log, evse_control=None):
        self.store = store
        self.log = log
        self.evse_control = evse_control
        self.fixed_vars = set()  # variables whose formula was dropped by a write (volatile, like the value)
        self._extra = {}  # add_command's commands (their own modules)
        # set by the app/services that own them; None: the commands that need them refuse
        self.site = None       # loadpilot.site.Site (HTTP-input devices, get_dev_info, the local dev_id)
        self.setpoints = {}    # dev_id -> [enable, current_ma, phases]: the manager's set-points (the app's dict)
        self.dev_info = None   # loadpilot.api.dev_info.DevInfo
        self.sessions = None   # loadpilot.sessions.tracker.SessionTracker (the journal and the open sessions)
        self.soft_meter = None  # loadpilot.soft_meter.SoftMeter (get_dev_info soft_meter; the app sets it)
        self.rfids = {}        # dev_id -> last RFID/PIN entered (enter_rfid, HTTP-input wallbox "rfid"); recorded
        # dev_id -> {"mamps", "no_charging", "no_evse_rules", "no_user_rules"}: the manager cycle applies C/c and
        # mamps and ends them when the car is unplugged; E/e/U/u are recorded until charging rules exist
        self.overrides = {}
        self.http_info = {}    # dev_id -> {"model", "max_charging_current"} from HTTP-input messages
        # authorization (docs/authorization.md): the app sets both; authorizer None = authorization is off
        self.authorizer = None  # sessions/auth.Authorizer
        self.whitelist = None   # callable -> sessions/whitelist.Whitelist, loaded on first use
        self.users = None       # callable -> sessions/users.Users, loaded on first use (docs/users.md)
        self.learning = None    # api/rfid_fn.Learning: a user's "Learn" (learn_rfid), armed for 60 s
        # who asks (set by run for the command it runs; docs/users.md): True = the HTTP admin login, False = HTTP
        # without it (a user's rights: their ID/PIN), None = a transport without a login (MQTT api/, whose
        # answers are published: user IDs hidden)
        self.login = None

    def add_command(self, name, fn):
        """A command that lives in its own module (fn(args, payload) -> result), e.g. modbus (api/modbus_cmd.py):
        every transport gets it through execute()."""
        self._extra[name] = fn

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
        """Shape and range by the schema, then the device: a set-point names a configured wallbox."""
        from loadpilot.config.schema import validate_volatile
        boxes = None
        for k in values:
            if k.startswith("cm_var."):
                raise ConfigError(shown_key(k), "use set_cm_vars for variables")
            validate_volatile(k, values[k])
            if k.startswith("setpoint."):
                if boxes is None:
                    boxes = [d["dev_id"] for d in self.store.get("devices") if d["dev_id"][0] == "E"]
                dev_id = k.split(".")[1]
                if dev_id not in boxes:
                    raise ConfigError(k, "no wallbox %s is configured" % dev_id)

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
            lim = None
            for r in EVSE_KEYS:
                if r[0] == k:
                    lim = r[1:]
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

    def _handler(self, cmd):
        fn = self._extra.get(cmd)
        if fn is not None:
            return fn
        if cmd in _WHITELIST_CMDS:
            return self._q_whitelist
        if cmd in _USER_CMDS:
            from loadpilot.api import user_cmd
            f = getattr(user_cmd, cmd)
            return lambda args, payload: f(self, args, payload)
        if cmd in _SESSION_CMDS:
            from loadpilot.api import session_cmd
            f = getattr(session_cmd, cmd)
            return lambda args, payload: f(self, args, payload)
        for c, name in _HANDLERS:
            if c == cmd:
                return getattr(self, name)
        return None

    def execute(self, query, body=None):
        """query: 'cmd=...&k=v'; body: POST/MQTT payload (str or bytes) or None. -> JSON-able result.
        Raises CommandError with a message that names what was wrong."""
        return self.run(parse_query(query), body)

    def run(self, args, body=None, login=None):
        """execute() of a query already parsed with parse_query (HTTP parses it once for its login). login: who
        asks (self.login): HTTP gives True/False, MQTT nothing."""
        self.login = login
        cmd = args.get("cmd")
        fn = self._handler(cmd)
        if fn is None:
            raise CommandError("unknown command %r" % (cmd,))
        payload = None
        if body and cmd == "whitelist_import":
            payload = body  # CSV text, not JSON
        elif body:
            try:
                from loadpilot.api import json_in  # only where a command has a body (heap: off costs nothing)
                payload = json_in.loads(body)  # size, depth and key limits: a clear error, never a crash
            except json_in.JsonError as e:
                raise CommandError("%s: body: %s" % (cmd, e))
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
        if any(not is_volatile(k) for k in changed):
            # HTTP, MQTT api/ and the pages: in flash before the answer, so a power cut right after the page said
            # "Saved" keeps it (a lowered fuse limit above all); Modbus writes stay coalesced (commit_delay_s)
            self.store.flush()
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


    # ---- devices (dev_id addressed)

    def local_id(self):
        """The board's own charge point's dev_id (codes.local_evse_id, kept by the Site), or None."""
        return self.site.local_id if self.site is not None else None

    def _wallbox(self, dev_id, cmd):
        """dev_id of a configured wallbox or of the local charge point. -> config dict, or None for a local
        charge point the device list does not name."""
        for d in self.store.get("devices"):
            if d["dev_id"] == dev_id:
                if dev_id[0] != "E":
                    raise CommandError("%s: %s is a meter, not a wallbox" % (cmd, dev_id))
                return d
        if dev_id == self.local_id() and dev_id is not None:
            return None
        raise CommandError("%s: unknown device %r" % (cmd, dev_id))

    def _q_get_dev_info(self, args, payload):
        if self.dev_info is None:
            raise CommandError("get_dev_info: not available")
        return self.dev_info.whole()

    def _q_whitelist(self, args, payload):
        from loadpilot.api import auth_commands
        return auth_commands.whitelist_cmd(self, args, payload)

    def _q_enter_rfid(self, args, payload):
        from loadpilot.sessions import ids
        try:
            rfid = ids.normal(args.get("rfid", ""))  # RFID or PIN: the one normal form (docs/authorization.md)
        except ids.IdError as e:
            raise CommandError("enter_rfid: %s" % e)
        if self.login is False:  # HTTP without the admin login: a user's ID/PIN or RFID only (docs/users.md)
            from loadpilot.api import user_cmd
            user_cmd.require_user(self, rfid, "enter_rfid", args.get("dev_id"))
        if self.authorizer is not None:
            from loadpilot.api import auth_commands
            return auth_commands.enter_rfid(self, args)
        dev_id = args.get("dev_id")
        if dev_id is None:
            boxes = [d["dev_id"] for d in self.store.get("devices") if d["dev_id"][0] == "E"]
            local = self.local_id()
            if local is not None and local not in boxes:
                boxes.append(local)
            if len(boxes) != 1:
                raise CommandError("enter_rfid: give dev_id (automatic assignment needs exactly one wallbox)")
            dev_id = boxes[0]
        self._wallbox(dev_id, "enter_rfid")
        self.rfids[dev_id] = rfid
        return {"ok": True, "dev_id": dev_id}

    def _q_override_device(self, args, payload):
        dev_id = args.get("dev_id", "")
        self._wallbox(dev_id, "override_device")
        flags = args.get("flags", "")
        for f in flags:
            if f not in "CcEeUu":
                raise CommandError("override_device: unknown flag %r (C c E e U u)" % f)
        mamps = None
        if "mamps" in args:
            x = _number(args["mamps"], "mamps")
            if x != int(x) or not 0 <= x <= 80000:
                raise CommandError("override_device: mamps must be an integer 0..80000 mA")
            mamps = int(x)
        by = user = None
        if self.login is True:  # the HTTP admin login: every flag (reference/http-api.md "Admin pwd")
            by = "admin"
        elif "E" in flags.upper() or "U" in flags.upper() or "pwd" in args:  # the admin password or a user's RFID/PIN
            from loadpilot.api import auth_commands
            by, user = auth_commands.override_credentials(self, flags, args)
        if self.login is False and by != "admin":  # C/c, mamps, U/u without the admin: a user of this wallbox
            from loadpilot.api import user_cmd
            user = user_cmd.box_user(self, dev_id, args.get("rfid"), "override_device")
            by = "user"
        self.override(dev_id, flags, mamps, by)
        if user is not None:
            self.rfids[dev_id] = user
        return {"ok": True}

    def override(self, dev_id, flags="", mamps=None, by=None, phases=None):
        """The one writer of a wallbox's transaction overrides (override_device, a user's RFID functions in
        api/rfid_fn.py); the manager cycle applies them until the car is unplugged. phases: 1 or 3 in place of
        the wallbox's phases setting."""
        o = self.overrides.get(dev_id) or {"mamps": None, "no_charging": False, "no_evse_rules": False,
                                            "no_user_rules": False}
        for f in flags:
            key = {"c": "no_charging", "e": "no_evse_rules", "u": "no_user_rules"}[f.lower()]
            o[key] = f.isupper()
        if mamps is not None:
            o["mamps"] = mamps
        if phases is not None:
            o["phases"] = phases
        if by is not None:
            o["by"] = by  # "admin", "rfid" or "user": who allowed it (the password itself is never kept)
        self.overrides[dev_id] = o

    def charging_enabled(self, dev_id):
        """Charging allowed: not disabled by override_device C, by MQTT ctl or a Modbus master (the local box)."""
        o = self.overrides.get(dev_id)
        if o is not None and o["no_charging"]:
            return False
        if dev_id == self.local_id() and self.evse_control is not None:
            return bool(self.evse_control.enable)
        return self.store.volatile.get("setpoint.%s.ena" % dev_id) != 0

    def pushed_answer(self, dev_id, dev):
        """What an HTTP-input wallbox is told (set_ajax_evse answer, MQTT set_res): the manager's set-point,
        as a polled box gets it written; before the manager's first decision (and in observation mode without
        a ctl set-point) its start limit."""
        from loadpilot.manager.model import R_DISABLED
        st = self.site.device(dev_id)
        sp = self.setpoints.get(dev_id)
        if sp is None or sp[0] is None:  # no decision, or a phase-only ctl set-point
            cur = st.safe_ma if st is not None else 0
        else:
            cur = sp[1] if sp[0] else 0
        a = self.authorizer
        if a is not None and st is not None:  # a car that came since the last look is seen before it is answered
            import time
            a.observe(dev_id, st.status, time.ticks_ms(), st.plugins)
            if not a.allowed(dev_id):
                cur = 0  # as the local box's task does: never the last car's set-point for a car not authorized
        # a pause or a missing car is not a refusal: charging_enabled is false only for a disabled box
        enabled = self.charging_enabled(dev_id) and not (st is not None and st.reason == R_DISABLED)
        return {"device_enabled": dev["device_enabled"], "charging_enabled": enabled,
                "paused": st is not None and st.paused, "charging_current": cur}

    # ---- HTTP-input devices (HTTP set_ajax_meter/set_ajax_evse, MQTT set/<dev_id>)

    def _q_set_ajax(self, args, payload):
        dev_id = args.get("dev_id", "")
        if payload is None:  # the GET form: values in the query, lists comma-separated
            payload = {}
            for k in args:
                if k not in ("cmd", "dev_id"):
                    v = args[k]
                    payload[k] = [_json_value(x) for x in v.split(",")] if k in ("voltage", "current") \
                        else (v if k in ("model", "rfid") else _json_value(v))
        kind = "E" if args.get("cmd") == "set_ajax_evse" else "M"
        if dev_id[:1] != kind:
            raise CommandError("%s: %r is not a %s" % (args.get("cmd"), dev_id, "wallbox" if kind == "E" else "meter"))
        return self.http_input(dev_id, payload)

    def http_input(self, dev_id, obj, now_ms=None):
        """One HTTP-input message (reference/http-api.md, HTTP meters and EVSEs) for dev_id -> the wallbox
        answer object, or {"ok": true} for a meter. Checked whole before anything changes."""
        import time
        if self.site is None:
            raise CommandError("http input: not available")
        dev = None
        for d in self.store.get("devices"):
            if d["dev_id"] == dev_id:
                dev = d
        if dev is None or self.site.device(dev_id) is None:
            raise CommandError("http input: unknown device %r" % (dev_id,))
        if dev["driver"] != HTTP_INPUT:
            raise CommandError("http input: %s is not an HTTP-input device (driver %s)" % (dev_id, dev["driver"]))
        if not isinstance(obj, dict):
            raise CommandError("http input: expected a JSON object")
        r = {}
        info = {}
        if "model" in obj:
            if not isinstance(obj["model"], str) or len(obj["model"]) > 64:
                raise CommandError("http input: model must be a string of at most 64 characters")
            info["model"] = obj["model"]
        if "current" in obj:
            r["current_ma"] = _triple(obj["current"], "current", -_MA_LIMIT, _MA_LIMIT)
        if dev_id[0] == "M":
            if "voltage" in obj:
                r["voltage_v"] = _triple(obj["voltage"], "voltage", 0, 1000)
            for src, dst in (("import_wh", "import_wh"), ("import_vah", "import_wh"), ("export_wh", "export_wh")):
                if src in obj:
                    r[dst] = _int_in(obj[src], src, 0, _WH_LIMIT)
            is_va = obj.get("is_va", False)
            if not isinstance(is_va, bool):
                raise CommandError("http input: is_va must be true or false")
            for src in ("power_w", "power_va"):
                if src in obj:
                    p = _int_in(obj[src], src, -_W_LIMIT, _W_LIMIT)
                    if src == "power_va" or is_va:
                        r["power_va"] = p
                    else:
                        r["power_w"] = p
        else:
            if "state" in obj:
                r["status"] = _int_in(obj["state"], "state", 1, 5)
            if "max_charging_current" in obj:
                info["max_charging_current"] = _int_in(obj["max_charging_current"], "max_charging_current", 0,
                                                       _MA_LIMIT)
            if "total_energy" in obj:
                r["import_wh"] = _int_in(obj["total_energy"], "total_energy", 0, _WH_LIMIT)
            if obj.get("rfid"):  # "" or null: no card
                from loadpilot.sessions import ids
                try:
                    rfid = ids.normal(obj["rfid"])
                except ids.IdError as e:
                    raise CommandError("http input: rfid: %s" % e)
        try:
            self.site.push({dev_id: r}, time.ticks_ms() if now_ms is None else now_ms)
        except (ValueError, TypeError) as e:
            raise CommandError("http input: %s" % e)
        if info:
            self.http_info.setdefault(dev_id, {}).update(info)
        if dev_id[0] == "M":
            return {"ok": True}
        if obj.get("rfid"):
            self.rfids[dev_id] = rfid
            if self.authorizer is not None:  # the box's own reader: authorizes its car (docs/authorization.md)
                from loadpilot.api import auth_commands
                auth_commands.reader_rfid(self, dev_id, rfid)
        elif "rfid" in obj and self.authorizer is not None:  # no card now: the next one is a new presentation
            self.authorizer.card_gone(dev_id)
        return self.pushed_answer(dev_id, dev)

    # ---- MQTT ctl (observation mode)

    def ctl(self, obj):
        """{"E1": {"cur": mA, "ena": bool, "wke": bool, "phs": 1|3}, ...}, each key optional. Only in
        observation mode. The local charge point gets evse_set overrides; other wallboxes get set-points in
        the volatile store (setpoint.<dev_id>.cur/ena/wke/phs) for the driver layer. All or nothing."""
        if self.store.get("lb_enabled"):
            raise CommandError("ctl: only in observation mode (lb_enabled is true)")
        if not isinstance(obj, dict) or not obj:
            raise CommandError("ctl: expected a JSON object of dev_id: {cur, ena, wke, phs}")
        local = {}
        remote = {}
        for dev_id in obj:
            self._wallbox(dev_id, "ctl")
            sub = obj[dev_id]
            if not isinstance(sub, dict):
                raise CommandError("ctl: %s: expected an object" % dev_id)
            for k in sub:
                if k not in ("cur", "ena", "wke", "phs"):
                    raise CommandError("ctl: %s: unknown key %r" % (dev_id, k))
            if "cur" in sub:
                _int_in(sub["cur"], "ctl %s cur" % dev_id, 6000, 63000)
            for k in ("ena", "wke"):
                if k in sub and not isinstance(sub[k], bool):
                    raise CommandError("ctl: %s: %s must be true or false" % (dev_id, k))
            if "phs" in sub and (isinstance(sub["phs"], bool) or sub["phs"] not in (1, 3)):
                raise CommandError("ctl: %s: phs must be 1 or 3" % dev_id)
            if dev_id == self.local_id() and self.evse_control is not None:
                if "cur" in sub:
                    local["charging_cur_limit_ma"] = sub["cur"]
                if "ena" in sub:
                    local["charging_enable"] = 1 if sub["ena"] else 0
                if sub.get("wke"):
                    local["disconnect_cp_s"] = WAKEUP_S
                if "phs" in sub:
                    local["relay_select"] = 1 if sub["phs"] == 1 else 0
            else:
                for k in sub:
                    remote["setpoint.%s.%s" % (dev_id, k)] = int(sub[k])
        try:
            if remote:
                self.store.volatile.set_many(remote)
        except ConfigError as e:
            raise CommandError("ctl: %s" % e)
        if local:
            self.evse_set(local)
        return {"ok": True}


# command -> the method that answers it: a constant table (in flash when frozen), not a dict of bound methods
_HANDLERS = (("get_params", "_q_get_params"), ("set_params", "_q_set_params"), ("get_cm_vars", "_q_get_cm_vars"),
             ("set_cm_vars", "_q_set_cm_vars"), ("get_dev_info", "_q_get_dev_info"),
             ("enter_rfid", "_q_enter_rfid"), ("override_device", "_q_override_device"),
             ("set_ajax_meter", "_q_set_ajax"), ("set_ajax_evse", "_q_set_ajax"))
# commands whose code lives in api/user_cmd.py (docs/users.md), and those a user runs without the admin login
# (HTTP): the command layer checks the user's ID/PIN (self.login False)
_USER_CMDS = ("get_users", "get_user", "set_user", "get_new_user_id", "del_user", "learn_rfid", "get_user_status")
USER_RIGHTS = ("get_user", "set_user", "enter_rfid", "override_device", "learn_rfid", "get_user_status")
# commands whose code lives in api/session_cmd.py (imported with the first of them)
_SESSION_CMDS = ("get_sessions", "export_sessions", "change_admin_pwd")
_WHITELIST_CMDS = ("whitelist_add", "whitelist_delete", "whitelist_clear", "whitelist_search", "whitelist_import",
                   "whitelist_export")
HTTP_INPUT = "http_input"  # driver name of devices fed from outside (HTTP set_ajax_*, MQTT set/<dev_id>)
WAKEUP_S = 3          # ctl "wke": CP held off this long, which makes most cars resume charging
_MA_LIMIT = 1000000
_W_LIMIT = 10000000
_WH_LIMIT = 2 ** 47


def _int_in(v, name, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or not lo <= v <= hi:
        raise CommandError("%s must be a number %d..%d, got %r" % (name, lo, hi, v))
    return int(v)


def _triple(v, name, lo, hi):
    if not isinstance(v, list) or not 1 <= len(v) <= 3:
        raise CommandError("%s must be a list of 1 to 3 numbers" % name)
    out = [_int_in(x, name, lo, hi) for x in v]
    while len(out) < 3:
        out.append(0 if name == "current" else out[0])
    return out


def _json_value(text):
    # query-string values: numbers and true/false as JSON, anything else as a string
    try:
        from loadpilot.api import json_in
        return json_in.loads(text)
    except ValueError as e:  # json_in.JsonError
        if not getattr(e, "limit", False):
            return text
        raise CommandError("query value: %s" % e)


def error_answer(message, query):
    """The answer to a refused request (MQTT api_res, HTTP): {"error": what was wrong, "query": the request},
    with secrets redacted, also where the query carried them percent-encoded."""
    if "%" in query or "+" in query:
        query = _unquote(query)
    query = redact(query)
    return {"error": redact(message), "query": query if len(query) <= 200 else query[:200] + "..."}
