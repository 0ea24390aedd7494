# The configuration schema as data: one row per setting (name, kind, default, lo, hi, flags). A later feature
# adds rows, not code; a new *kind* of value adds one checker function to _check.
#
# Row meaning by kind:
#   "int"    lo..hi inclusive (currents in mA, times in s)     "bool"  true/false
#   "str"    lo..hi characters                                  "choice" lo is the tuple of allowed values
#   "mqtt_url" broker URL (SPEC-NOTES: mqtt[s][3|5]://[user:pass@]host[:port]) or "" for none
#   "rtu_port" "NAME,BAUD,BITS,PARITY,STOP" (e.g. COM1,9600,8,n,1) or "" for none
#   "devices"  list of device objects checked against DEVICE_FIELDS
#   "modbus_proxy" "UNITS@PORT;UNITS@PORT..." (e.g. "2-9,12@COM1;20@COM2,9600,8,n,1") or "" for off
# Flags: SECRET (never shown: "***"), SECRET_URL (the password inside the URL is never shown).
# Names follow the HTTP API (get_dev_info params / devices) where it has one.
#
# validate(key, value, path) -> normalized value, or raises ConfigError(field, reason). Error text never
# contains the value of a secret field.

from micropython import const

from loadpilot.redact import REDACTED, redact

# const: names in the FIELDS rows must fold to constants, or each row (and the table) is built in RAM at import
SECRET = const(1)
SECRET_URL = const(2)
HIDDEN_PASSWORD = "a hidden password (***) cannot be saved: type it in full"  # the pages say the same

VERSION = 2  # version of the stored file format; migrate.py brings older files up to this

FACTORY_ADMIN_PWD = const("JuiCeMeUP!")  # seed 004's operator access; a box still using it warns on every answer
_MA_MAX = const(1000000)  # 1000 A: above any house connection this controller will see

FIELDS = (
    ("title", "str", "LoadPilot", 0, 32, 0),
    ("desc", "str", "", 0, 64, 0),
    # SunSpec model 60000 persisted points (its +16 percent is volatile, see VOLATILE_FIELDS)
    ("max_total_current", "int", 32000, 0, _MA_MAX, 0),
    ("reserve_current", "int", 0, 0, _MA_MAX, 0),
    ("overdraft_cur", "int", 0, 0, _MA_MAX, 0),
    ("max_total_evse_current", "int", 0, 0, _MA_MAX, 0),  # 0: no limit beyond max_total_current
    ("max_imbalance_current", "int", 20000, 0, _MA_MAX, 0),  # 20 A: the usual grid-code unbalance limit
    ("lb_enabled", "bool", True, 0, 0, 0),
    ("imbalance_add_home", "bool", False, 0, 0, 0),
    ("disable_policy", "choice", 1, (-1, 0, 1), 0, 0),
    ("meter_timeout_s", "int", 15, 1, 600, 0),
    # time-dependent max current (seed 004): [{"hour": 0..23, "l1": mA, "l2": mA, "l3": mA}, ...], >= 2 entries
    ("cm_schedule", "schedule", (), 0, 24, 0),
    # load shedding (seed 004): the board's load_shed input, its active level, mA taken off each phase
    ("shedding_enabled", "bool", False, 0, 0, 0),
    ("shedding_active_level", "choice", 1, (0, 1), 0, 0),
    ("shedding_offsets", "ma3", (0, 0, 0), 0, 1000000, 0),
    # charging groups: [{"group": 1.., "l1": mA, "l2": mA, "l3": mA}]; a wallbox joins with its "group"
    ("group_limits", "group_limits", (), 0, 16, 0),  # a meter or wallbox silent this long counts as failed
    ("grid_fail_safe_current", "int", 6000, 0, 1000000, 0),  # EV budget per phase while the grid meter is silent
    # operator's limit for all wallboxes per grid phase L1..L3 (OMCCI 613-615), mA; 0 = none on that phase
    ("dlm_operator_limit", "ma3", (0, 0, 0), 0, _MA_MAX, 0),
    # Modbus server
    ("modbus_enabled", "bool", True, 0, 0, 0),
    ("modbus_id", "int", 1, 1, 246, 0),  # 246: ID+1 serves the device map and must stay <= 247
    ("modbus_tcp_port", "int", 1502, 0, 65535, 0),  # 0: TCP server off
    ("modbus_rtu_port", "rtu_port", "", 0, 0, 0),
    # TCP-to-RTU proxy: unit ids the server on modbus_tcp_port forwards to an RS485 bus ("" off; docs/modbus.md)
    ("modbus_proxy", "modbus_proxy", "", 0, 200, 0),
    # the local charge point as a Modbus slave: Power Brain map (reference/modbus-registers.md) and OMCCI map
    ("pb_tcp_port", "int", 4701, 0, 65533, 0),  # EVSE on this port, S0 meters on +1 and +2; 0: off
    ("pb_evse_id", "int", 1, 1, 247, 0),
    ("pb_s0_1_id", "int", 2, 1, 247, 0),
    ("pb_s0_2_id", "int", 3, 1, 247, 0),
    ("slave_rtu_port", "rtu_port", "", 0, 0, 0),  # serve the maps on this RS485 port (the bus is then a slave)
    ("slave_rtu_map", "choice", "powerbrain", ("powerbrain", "omcci"), 0, 0),
    ("omcci_tcp_port", "int", 0, 0, 65535, 0),  # 502 is the usual port; 0: off
    ("omcci_unit_id", "int", 1, 1, 247, 0),
    ("evse_def_fixed_current", "int", 0, 0, 63000, 0),      # 8080: 0 = none
    ("evse_def_cur_limit", "int", 32000, 6000, 63000, 0),   # 8081
    ("evse_def_enable", "bool", True, 0, 0, 0),             # 8082
    ("fail_safe_duration", "int", 300, 0, 86400, 0),        # 8083, s; 0 = no fail-safe
    ("fail_safe_current", "int", 6000, 0, 63000, 0),        # 8085, mA; 0 = stop charging
    ("omcci_safe_current", "int", 6000, 0, 80000, 0),       # 131, mA
    ("omcci_comm_timeout", "int", 0, 0, 65535, 0),          # 132, s; 0 = no timeout
    ("count_restart", "int", 0, 0, 2147483647, 0),          # 8120
    ("s0_1_pulses_per_kwh", "int", 1000, 1, 100000, 0),     # 8042 of unit 2
    ("s0_1_phases", "int", 1, 1, 7, 0),                     # 8044: bit mask L1..L3
    ("s0_1_voltage", "int", 230, 100, 300, 0),              # 8045-8047 (one nominal voltage for all phases)
    ("s0_2_pulses_per_kwh", "int", 1000, 1, 100000, 0),
    ("s0_2_phases", "int", 1, 1, 7, 0),
    ("s0_2_voltage", "int", 230, 100, 300, 0),
    # S0 counters, saved by the meter every 100 Wh or 15 min (evse/s0.py) and coalesced by the store
    ("s0_1_energy_wh", "int", 0, 0, 2 ** 47, 0),
    ("s0_1_pulses", "int", 0, 0, 2 ** 47, 0),
    ("s0_2_energy_wh", "int", 0, 0, 2 ** 47, 0),
    ("s0_2_pulses", "int", 0, 0, 2 ** 47, 0),
    # simulated energy meters of the wallboxes without one, "E1=123,E2=4567" Wh (soft_meter.py saves them alike)
    ("soft_meter_wh", "str", "", 0, 512, 0),
    # MQTT
    ("mqtt_enabled", "bool", False, 0, 0, 0),
    ("mqtt_url", "mqtt_url", "", 0, 0, SECRET_URL),
    ("mqtt_topic_root", "str", "cfos_mqtt", 1, 64, 0),
    # MQTT API topics (docs/mqtt-topics.md): "" off, "mqtt" = the default broker mqtt_url, or a broker URL
    ("mqtt_topic_serial", "bool", False, 0, 0, 0),  # root becomes <mqtt_topic_root>_<serial>
    ("mqtt_api_url", "mqtt_broker", "", 0, 0, SECRET_URL),       # api/<query> -> api_res, ctl
    ("mqtt_dev_info_url", "mqtt_broker", "", 0, 0, SECRET_URL),  # get/dev_info, get/params, get/<dev_id>
    ("mqtt_log_url", "mqtt_broker", "", 0, 0, SECRET_URL),       # log
    ("mqtt_ta_log_url", "mqtt_broker", "", 0, 0, SECRET_URL),    # ta_log
    ("mqtt_ctl_enabled", "bool", False, 0, 0, 0),   # ctl topic (observation mode only)
    ("mqtt_ha_discovery", "bool", False, 0, 0, 0),  # Home Assistant discovery on the dev_info broker
    ("mqtt_publish_s", "int", 10, 1, 3600, 0),       # get/... publish interval
    ("http_input_timeout_s", "int", 60, 1, 3600, 0),  # a pushed device's push_timeout when it sets none (0)
    # OCPP 1.6J client (docs/ocpp.md); off, and not even imported, while ocpp_url is ""
    ("ocpp_url", "ws_url", "", 0, 256, 0),  # ws[s]://host[:port][/path]; the Client ID is appended
    ("ocpp_password", "str", "", 0, 64, SECRET),  # HTTP Basic auth with the Client ID as user
    ("ocpp_client_id", "ocpp_id", "", 0, 48, 0),  # "" = the board's serial number
    ("ocpp_connector_id", "int", 1, 1, 99, 0),
    ("ocpp_heartbeat_s", "int", 0, 0, 86400, 0),  # 0 = the backend's interval (BootNotification)
    ("ocpp_meter_interval_s", "int", 60, 0, 86400, 0),  # MeterValueSampleInterval (used with sessions)
    ("ocpp_meter_measurands", "measurands", "Energy.Active.Import.Register,Power.Active.Import,Current.Import,"
     "Current.Offered,Voltage", 0, 160, 0),  # MeterValuesSampledData (ocpp/core.py MEASURANDS)
    ("ocpp_aligned_interval_s", "int", 0, 0, 86400, 0),  # ClockAlignedDataInterval, from midnight UTC; 0 = off
    ("ocpp_aligned_measurands", "measurands", "Energy.Active.Import.Register", 0, 160, 0),  # MeterValuesAlignedData
    ("ocpp_ws_ping_s", "int", 30, 0, 3600, 0),  # WebSocketPingInterval; 0 = no pings
    ("ocpp_available", "bool", True, 0, 0, 0),  # ChangeAvailability, persisted
    ("ocpp_fixed_rfid", "str", "", 0, 20, 0),  # idTag of sessions without a presented ID; "" = free_charging_tag
    ("ocpp_queue_full_block", "bool", False, 0, 0, 0),  # seed "Disallow charging if OCPP queue full"
    ("ocpp_tx_attempts", "int", 5, 1, 10, 0),  # seed "Number of transaction message attempts"
    ("ocpp_tx_retry_s", "int", 60, 0, 86400, 0),  # TransactionMessageRetryInterval (x attempt number)
    ("ocpp_local_auth_offline", "bool", True, 0, 0, 0),  # LocalAuthorizeOffline: the cache decides offline
    ("ocpp_local_preauthorize", "bool", False, 0, 0, 0),  # LocalPreAuthorize: a cached ID starts at once online
    ("ocpp_allow_offline_unknown", "bool", False, 0, 0, 0),  # AllowOfflineTxForUnknownId
    ("ocpp_auth_cache", "bool", True, 0, 0, 0),  # AuthorizationCacheEnabled
    ("ocpp_local_list", "bool", True, 0, 0, 0),  # LocalAuthListEnabled (SendLocalList, ocpp/locallist.py)
    # TLS (wss://): CA list -> server verified (profile 2); client cert + key -> presented (profile 3)
    ("ocpp_tls_ca", "pem", "", 0, 8192, SECRET),
    ("ocpp_tls_cert", "pem", "", 0, 4096, SECRET),
    ("ocpp_tls_key", "pem", "", 0, 4096, SECRET),
    # access
    ("admin_pwd", "str", FACTORY_ADMIN_PWD, 0, 64, SECRET),  # write-only; HTTP login (docs/http.md)
    ("http_port", "int", 0, 0, 65535, 0),  # HTTP /cnf API (docs/http.md), usually 80; 0: off
    # accept_license (reference/http-api.md): stored answers only; LoadPilot has no license and sends no statistics
    ("license_accepted", "bool", False, 0, 0, 0),
    ("allow_usage_stats", "bool", False, 0, 0, 0),
    # authorization (seed: AUTHORIZATION; docs/authorization.md); a wallbox requires it with "auth_required"
    ("free_charging", "bool", False, 0, 0, 0),
    ("free_charging_tag", "id_tag", "FREECHARGING", 0, 0, 0),  # seed "freecharging"; tags compare uppercase
    ("auth_if_in_doubt", "bool", False, 0, 0, 0),  # an ID that cannot be checked is allowed
    ("vehicle_connection_timeout_s", "int", 45, 1, 3600, 0),
    # store behaviour
    ("commit_delay_s", "int", 150, 1, 3600, 0),
    ("devices", "devices", (), 0, 50, 0),
    # Charging Manager variables: name and formula (system-configuration.md); values are volatile (cm_var.<name>)
    ("cm_vars", "cm_vars", (), 0, 32, 0),
)

# Per-device rows, as above plus a last column naming the device kinds that take the field: "E" wallbox,
# "M" meter.
# A default of None means required.
DEVICE_FIELDS = (
    ("dev_id", "dev_id", None, 0, 0, 0, "EM"),
    ("driver", "ident", None, 1, 32, 0, "EM"),
    ("name", "str", "", 0, 32, 0, "EM"),
    ("desc", "str", "", 0, 64, 0, "EM"),  # description (get_dev_info "desc")
    ("device_enabled", "bool", True, 0, 0, 0, "EM"),
    ("address", "str", "", 0, 64, 0, "EM"),  # URL, IP address or COM port + parameters, as in the HTTP API
    ("id", "int", 1, 1, 247, 0, "EM"),  # Modbus ID
    ("role", "int", 0, 0, 6, 0, "M"),  # 0 display .. 6 storage all (SPEC-NOTES)
    ("publish_modbus", "bool", False, 0, 0, 0, "EM"),
    ("publish_mqtt", "bool", False, 0, 0, 0, "EM"),
    ("min_charging_cur", "int", 6000, 0, 80000, 0, "E"),
    ("max_charging_cur", "int", 16000, 0, 80000, 0, "E"),
    ("prio", "int", 1, 1, 10, 0, "E"),
    ("pv_mode", "choice", "off", ("off", "pv_only", "min_pv", "now"), 0, 0, "E"),
    # device layer (docs/devices.md)
    ("wiring", "choice", "123", ("123", "231", "312", "132", "213", "321"), 0, 0, "EM"),  # site phase of device L1..L3
    ("phases", "int", 3, 1, 3, 0, "E"),  # phases the box is wired for (currents of a box without a meter)
    ("fail_safe_current", "int", 6000, 0, 80000, 0, "E"),  # mA the box falls back to when the master is silent
    ("fail_safe_secs", "int", 60, 0, 3600, 0, "E"),  # silence before that fallback, where the master sets it
    ("push_timeout", "int", 0, 0, 3600, 0, "EM"),  # pushed devices: s without data -> com_err; 0: http_input_timeout_s
    ("auth_required", "bool", False, 0, 0, 0, "E"),  # charging only after an RFID/PIN (docs/authorization.md)
    ("group", "int", 0, 0, 16, 0, "EM"),  # load group for the manager; 0 = the site
    ("attach", "str", "", 0, 8, 0, "M"),  # meter measuring a wallbox: that box's dev_id, e.g. "E2"
    # meter_mqtt: a user-defined meter definition (reference/user-defined-meters.md, rtype 2), at most 4 KB
    ("definition", "json_object", (), 0, 4096, 0, "M"),  # () stands for {} (_fresh)
)
MAX_WALLBOXES = 25

# Values that may change every second and must never reach flash (SPEC-NOTES: 60000 +16, 60001, 60002).
# Keys with a prefix from VOLATILE_PREFIXES are free-form (Charging Manager variables, set-points).
VOLATILE_FIELDS = (  # written out: a generated row would be built in RAM at import; constants stay in flash
    ("max_total_cur_prc", "int", 100, 0, 100, 0),
    ("cm_flag1", "int", 0, 0, 1, 0), ("cm_flag2", "int", 0, 0, 1, 0), ("cm_flag3", "int", 0, 0, 1, 0),
    ("cm_flag4", "int", 0, 0, 1, 0), ("cm_flag5", "int", 0, 0, 1, 0), ("cm_flag6", "int", 0, 0, 1, 0),
    ("cm_flag7", "int", 0, 0, 1, 0), ("cm_flag8", "int", 0, 0, 1, 0), ("cm_flag9", "int", 0, 0, 1, 0),
    ("cm_flag10", "int", 0, 0, 1, 0), ("cm_flag11", "int", 0, 0, 1, 0), ("cm_flag12", "int", 0, 0, 1, 0),
    ("cm_flag13", "int", 0, 0, 1, 0), ("cm_flag14", "int", 0, 0, 1, 0), ("cm_flag15", "int", 0, 0, 1, 0),
    ("cm_flag16", "int", 0, 0, 1, 0), ("cm_flag17", "int", 0, 0, 1, 0), ("cm_flag18", "int", 0, 0, 1, 0),
    ("cm_flag19", "int", 0, 0, 1, 0), ("cm_flag20", "int", 0, 0, 1, 0), ("cm_flag21", "int", 0, 0, 1, 0),
    ("cm_flag22", "int", 0, 0, 1, 0), ("cm_flag23", "int", 0, 0, 1, 0), ("cm_flag24", "int", 0, 0, 1, 0),
    ("cm_flag25", "int", 0, 0, 1, 0), ("cm_flag26", "int", 0, 0, 1, 0), ("cm_flag27", "int", 0, 0, 1, 0),
    ("cm_flag28", "int", 0, 0, 1, 0), ("cm_flag29", "int", 0, 0, 1, 0), ("cm_flag30", "int", 0, 0, 1, 0),
    ("cm_flag31", "int", 0, 0, 1, 0), ("cm_flag32", "int", 0, 0, 1, 0),
)
# Keys with a prefix have a schema too: cm_var.<name> (a configured variable: api/commands.py checks the name
# against cm_vars) and setpoint.<dev_id>.<key> (a configured wallbox: checked there too), per SETPOINT_FIELDS.
VOLATILE_PREFIXES = (("cm_var.", "cm_var"), ("setpoint.", "setpoint"))
# MQTT ctl set-points of a wallbox: (key, lo, hi, also allowed), integers as the persistent settings
SETPOINT_FIELDS = (
    ("cur", 6000, 63000, 0),  # mA; 0 = no current (off)
    ("ena", 0, 1, None),
    ("wke", 0, 1, None),
    ("phs", 1, 1, 3),         # 1 or 3 phases
)
_VAR_NAME_MAX = 40
_VAR_MAX = 1e15  # a variable's value: finite and bounded, so an integer never becomes a heap-sized bigint
# Every set-point of every wallbox plus every variable: a valid key is never refused, and the pool stays
# under 132 keys of at most 47 characters with small values (a few KB of heap) whatever a caller sends.
MAX_VOLATILE_FREE = MAX_WALLBOXES * len(SETPOINT_FIELDS) + 32


class ConfigError(ValueError):
    def __init__(self, field, reason):
        super().__init__("%s: %s" % (field, reason))
        self.field = field
        self.reason = reason


class Secret:
    """A secret value as returned by Store.get(): str/repr show only the redacted form, reveal() the value.
    json.dumps of one raises TypeError on CPython and writes the redacted text on MicroPython: for JSON
    replies use Store.view()/public(), which hold plain redacted strings."""

    def __init__(self, value, shown=REDACTED):
        self._value = value
        self._shown = shown

    def reveal(self):
        return self._value

    def __str__(self):
        return self._shown

    def __repr__(self):
        return self._shown

    def __eq__(self, other):
        if isinstance(other, Secret):
            other = other._value
        return self._value == other

    def __ne__(self, other):
        return not self.__eq__(other)

    def __bool__(self):
        return bool(self._value)


def _row(table, key):
    for r in table:
        if r[0] == key:
            return r
    return None


def field(key):
    return _row(FIELDS, key)


def is_volatile(key):
    if _row(VOLATILE_FIELDS, key) is not None:
        return True
    for p, _ in VOLATILE_PREFIXES:
        if key.startswith(p):
            return True
    return False


def _fresh(row):
    # A row's default. List and object defaults are written as tuples: a list or dict in a row would make the
    # whole table a RAM copy at import, while a table of constants stays in flash. Each use gets its own.
    d = row[2]
    if row[1] == "json_object":
        return {}
    return list(d) if isinstance(d, tuple) else d


def defaults():
    out = {}
    for r in FIELDS:
        out[r[0]] = _fresh(r)
    return out


def _shown(row, value):
    # the value as it may appear in an error message
    return "(hidden)" if row[5] & (SECRET | SECRET_URL) else repr(value)


def _int(value, row, path):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, "expected an integer, got %s" % _shown(row, value))
    if not row[3] <= value <= row[4]:
        raise ConfigError(path, "out of range %d..%d, got %s" % (row[3], row[4], _shown(row, value)))
    return value


def _bool(value, row, path):
    if not isinstance(value, bool):
        raise ConfigError(path, "expected true or false, got %s" % _shown(row, value))
    return value


def _str(value, row, path):
    if not isinstance(value, str):
        raise ConfigError(path, "expected a string")
    if not row[3] <= len(value) <= row[4]:
        got = "" if row[5] & SECRET else ", got %d" % len(value)
        raise ConfigError(path, "length must be %d..%d characters%s" % (row[3], row[4], got))
    return value


def _choice(value, row, path):
    for c in row[3]:
        if value == c and type(value) is type(c):
            return value
    raise ConfigError(path, "must be one of %s, got %s" % (", ".join(repr(c) for c in row[3]), _shown(row, value)))


def _ident(value, row, path):
    _str(value, row, path)
    for ch in value:
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "_"):
            raise ConfigError(path, "only a-z, 0-9 and _ allowed, got %r" % (value,))
    return value


def _ws_url(value, row, path):
    _str(value, row, path)
    if value:
        if not url_chars_ok(value):
            raise ConfigError(path, "bad OCPP URL: percent-encode spaces, quotes and control characters")
        from loadpilot.ocpp import url  # imported only once OCPP is being configured
        try:
            url.parse(value, "")
        except ValueError as e:
            raise ConfigError(path, "bad OCPP URL: %s" % e)
    return value


def _ocpp_id(value, row, path):
    # the Client ID is a URL path segment and the Basic auth user name: no '/', ':' or '%'
    _str(value, row, path)
    for ch in value:
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in "-_.~"):
            raise ConfigError(path, "only letters, digits and - _ . ~ allowed")
    return value


def _measurands(value, row, path):
    # MeterValuesSampledData / MeterValuesAlignedData: known measurands, each once (as ChangeConfiguration checks)
    _str(value, row, path)
    from loadpilot.codes import OCPP_MEASURANDS as MEASURANDS
    items = value.split(",")
    for i in range(len(items)):
        if items[i] not in MEASURANDS or items[i] in items[:i]:
            raise ConfigError(path, "comma-separated, each once, from " + ",".join(MEASURANDS))
    return value


def _pem(value, row, path):
    _str(value, row, path)
    if value:
        from loadpilot.ocpp import tls
        try:
            tls.pem_blocks(value)
        except ValueError as e:  # the text never holds the data
            raise ConfigError(path, str(e))
    return value


_MQTT_SCHEMES = ("mqtt", "mqtts", "mqtt3", "mqtt5", "mqtts3", "mqtts5")


def split_mqtt_url(url):
    """-> (scheme, user, password, host, port) with the default port filled in; raises ValueError."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _MQTT_SCHEMES:
        raise ValueError("scheme must be one of %s" % ", ".join(_MQTT_SCHEMES))
    user = password = None
    if "@" in rest:
        cred, _, rest = rest.rpartition("@")
        user, _, password = cred.partition(":")
    rest = rest.rstrip("/")
    host, sep, port = rest.partition(":")
    if not host or "/" in host:
        raise ValueError("host missing")
    if sep:
        try:
            port = int(port)
        except ValueError:
            raise ValueError("port must be a number")
        if not 1 <= port <= 65535:
            raise ValueError("port out of range 1..65535")
    else:
        port = 8883 if scheme.startswith("mqtts") else 1883
    return scheme, user, password, host, port


def _mqtt_url(value, row, path):
    if not isinstance(value, str) or len(value) > 200:
        raise ConfigError(path, "expected a broker URL string of at most 200 characters")
    if value:
        if not url_chars_ok(value):
            raise ConfigError(path, "bad broker URL: percent-encode spaces, quotes and control characters")
        try:
            password = split_mqtt_url(value)[2]
        except ValueError as e:
            raise ConfigError(path, "bad broker URL: %s" % e)
        if password == REDACTED:  # get_params' view sent back: it would replace the password with ***
            raise ConfigError(path, HIDDEN_PASSWORD)
    return value


def _mqtt_broker(value, row, path):
    # a feature's broker: "" (off), the bare word "mqtt" (the default broker mqtt_url) or a URL
    if value == "mqtt":
        return value
    return _mqtt_url(value, row, path)


redact_url = redact  # the one redaction function (loadpilot/redact.py): a URL or any text holding URLs


def shown_key(key):
    """A caller's key as an error may echo it: redacted first, then cut to 48 characters."""
    key = redact(key)
    return key if len(key) <= 48 else key[:45] + "..."


def url_chars_ok(text):
    """False for a URL holding whitespace, quotes or control characters: those must be percent-encoded, so
    that redaction always finds where a password ends."""
    for ch in text:
        if ch <= " " or ch in "\"'\x7f":
            return False
    return True


_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def _rtu_port(value, row, path):
    if not isinstance(value, str):
        raise ConfigError(path, "expected a string like \"COM1,9600,8,n,1\"")
    if not value:
        return value
    parts = value.split(",")
    if len(parts) != 5:
        raise ConfigError(path, "expected NAME,BAUD,BITS,PARITY,STOP like \"COM1,9600,8,n,1\", got %r" % value)
    name, baud, bits, parity, stop = [p.strip() for p in parts]
    if not name or " " in name:
        raise ConfigError(path, "port name missing")
    try:
        baud, bits, stop = int(baud), int(bits), int(stop)
    except ValueError:
        raise ConfigError(path, "baud, bits and stop must be numbers, got %r" % value)
    if baud not in _BAUDS:
        raise ConfigError(path, "baud rate %d not supported" % baud)
    if bits not in (7, 8):
        raise ConfigError(path, "data bits must be 7 or 8")
    if parity.lower() not in ("n", "e", "o"):
        raise ConfigError(path, "parity must be n, e or o")
    if stop not in (1, 2):
        raise ConfigError(path, "stop bits must be 1 or 2")
    return "%s,%d,%d,%s,%d" % (name, baud, bits, parity.lower(), stop)


def _com_name(text, path):
    # "com2" -> "COM2"; the port part of a COM setting (the board's rs485_<n>)
    name = text.strip().upper()
    if len(name) < 4 or name[:3] != "COM" or not name[3:].isdigit() or int(name[3:]) < 1:
        raise ConfigError(path, "port %r must be COM1, COM2, ..." % text.strip())
    return "COM%d" % int(name[3:])


def _unit_range(text, path):
    lo, sep, hi = text.partition("-")
    try:
        lo = int(lo.strip())
        hi = int(hi.strip()) if sep else lo
    except ValueError:
        raise ConfigError(path, "%r is not a unit id or a range like 2-9" % text.strip())
    if not 1 <= lo <= 247 or not 1 <= hi <= 247:
        raise ConfigError(path, "unit id out of range 1..247 in %r" % text.strip())
    if lo > hi:
        raise ConfigError(path, "range %r runs backwards" % text.strip())
    return lo, hi


def parse_proxy(text, path="modbus_proxy"):
    """"2-9,12@COM1;20@COM2,9600,8,n,1" -> [(ranges, port, com)]: ranges a list of (lo, hi) unit ids, port the
    COM port ("COM1"), com its full settings when given ("COM2,9600,8,n,1"), else "" (the bus's own). A unit
    listed twice is refused. Raises ConfigError(path, reason)."""
    out = []
    seen = []
    for part in text.split(";"):
        if not part.strip():
            continue
        units, sep, com = part.partition("@")
        if not sep or not units.strip() or not com.strip():
            raise ConfigError(path, "%r: expected UNITS@PORT like \"2-9,12@COM1\"" % part.strip())
        port = _com_name(com.split(",")[0], path)
        if "," in com:
            com = _rtu_port(com.strip(), None, path)
            com = port + com[com.index(","):]
        else:
            com = ""
        for r in out:
            if r[1] == port and r[2] != com:
                raise ConfigError(path, "%s is given twice with different settings (a bus has one)" % port)
        ranges = []
        for u in units.split(","):
            lo, hi = _unit_range(u, path)
            for a, b in seen:
                if lo <= b and a <= hi:
                    raise ConfigError(path, "unit %d is listed twice" % max(lo, a))
            seen.append((lo, hi))
            ranges.append((lo, hi))
        out.append((ranges, port, com))
    return out


def proxy_text(routes):
    """The normalized setting for parse_proxy()'s result."""
    parts = []
    for ranges, port, com in routes:
        units = ",".join(("%d" % lo) if lo == hi else ("%d-%d" % (lo, hi)) for lo, hi in ranges)
        parts.append("%s@%s" % (units, com or port))
    return ";".join(parts)


def _modbus_proxy(value, row, path):
    if not isinstance(value, str) or len(value) > row[4]:
        raise ConfigError(path, "expected a string of at most %d characters like \"2-9,12@COM1;20@COM2\"" % row[4])
    return proxy_text(parse_proxy(value, path))


def com_ports(uarts):
    """The COM ports a board offers, from its UART names (rs485_1 is COM1)."""
    return sorted("COM" + k[6:] for k in uarts if k[:6] == "rs485_" and k[6:].isdigit())


def proxy_conflict(lo, hi, port, get, ports=None):
    """Why units lo..hi cannot be proxied to port next to the other settings (get(key) gives them), or None.
    ports: the board's COM ports (com_ports), or None when not known."""
    mid = get("modbus_id")
    for u in (mid, mid + 1):
        if lo <= u <= hi:
            return "unit %d is this box's own SunSpec server (modbus_id %d serves %d and %d)" % (u, mid, mid, mid + 1)
    for k in ("modbus_rtu_port", "slave_rtu_port"):
        v = get(k)
        if v and v.split(",")[0].strip().upper() == port:
            return "%s is this box's slave port (%s), and a bus has one master" % (port, k)
    if ports is not None and port not in ports:
        return "the board has no %s (it has %s)" % (port, ", ".join(ports) or "no RS485 port")
    return None


_PROXY_RELATED = ("modbus_proxy", "modbus_id", "modbus_rtu_port", "slave_rtu_port")

# ---- the socket budget (docs/configuration.md "Sockets"): every socket the settings open on the board
_BROKER_KEYS = ("mqtt_api_url", "mqtt_dev_info_url", "mqtt_log_url", "mqtt_ta_log_url")
_SOCKET_RELATED = ("modbus_enabled", "modbus_tcp_port", "pb_tcp_port", "omcci_tcp_port", "http_port", "mqtt_url",
                   "devices", "ocpp_url") + _BROKER_KEYS
SERVER_MOST = (4, 4)  # max_clients, max_pending of a Modbus TCP server when the budget has room
SERVER_LEAST = (1, 1)  # one served master, one connection waiting for its first byte (modbus/tcp_server.py)


def _broker_key(text, default):
    # the sharing rule of mqtt/connections.py: one connection per scheme kind, host, port and login
    if text == "mqtt":
        text = default
    if not text:
        return None
    try:
        scheme, user, password, host, port = split_mqtt_url(text)
    except ValueError:
        return None
    return (scheme.startswith("mqtts"), scheme.endswith("5"), host.lower(), port, user, password)


def _tcp_host(address):
    # a Modbus TCP device's host:port as devices/address.py reads it ("IP[:port]", port 502), else None
    t = (address or "").strip()
    low = t.lower()
    if not t or low in ("evse", "meter1", "meter2") or low.startswith("mqtt") or low.startswith("com") or "@" in t:
        return None
    host, sep, port = t.rpartition(":")
    if not sep:
        host, port = t, "502"
    return (host, port) if port.isdigit() else None


def _mqtt_fed(d, a):
    return d["driver"] == "meter_mqtt" or (d["driver"] == "http_input" and a.strip().lower()[:4] == "mqtt")


def _brokers(get):
    """-> (brokers, names): the broker connections the settings open (_broker_key each, shared as
    mqtt/connections.py shares them) and, for each, the settings and dev_ids that use it."""
    brokers = []
    names = []
    default = get("mqtt_url")
    users = [(key, get(key)) for key in _BROKER_KEYS]
    for d in get("devices"):
        a = d.get("address", "")
        if _mqtt_fed(d, a):
            users.append((d["dev_id"], a.strip() or "mqtt"))
    for who, text in users:
        k = _broker_key(text, default)
        if k is not None:
            if k not in brokers:
                brokers.append(k)
                names.append([who])
            else:
                names[brokers.index(k)].append(who)
    return brokers, names


def socket_plan(get, budget):
    """The sockets the settings (get(key) gives them) open on a board with budget (board.socket_budget):
    -> (need, uses, servers, tcp_own). need: sockets with every server at SERVER_LEAST. uses: [(what,
    sockets)] for the error text. servers: [[setting, port, max_clients, max_pending]], sized so the whole fits
    the budget when need does (spare sockets go round the servers one at a time, up to SERVER_MOST). tcp_own:
    how many Modbus TCP host:ports (in device-list order) keep a connection; the rest connect per poll."""
    uses = []
    servers = []
    seen = []
    listen = [("modbus_tcp_port", get("modbus_tcp_port") if get("modbus_enabled") else 0)]
    if budget.get("evse", True):
        pb = get("pb_tcp_port")
        listen.append(("pb_tcp_port", pb))
        for i in range(budget.get("s0_ports", 0)):
            listen.append(("pb_tcp_port+%d" % (i + 1), pb + 1 + i if pb else 0))
        listen.append(("omcci_tcp_port", get("omcci_tcp_port")))
    listen.append(("http_port", get("http_port")))  # the listener, its clients, one waiting (http/server.py)
    for key, port in listen:
        if port and port not in seen:  # the app serves a port once (the second setting is logged, not served)
            seen.append(port)
            servers.append([key, port, SERVER_LEAST[0], SERVER_LEAST[1]])
            uses.append(("%s %d (listener, clients, waiting)" % (key, port), 1 + SERVER_LEAST[0] + SERVER_LEAST[1]))
    brokers, names = _brokers(get)
    hosts = []
    devs = []
    for d in get("devices"):
        a = d.get("address", "")
        if _mqtt_fed(d, a):
            continue
        h = _tcp_host(a) if d.get("device_enabled", True) else None
        if h is not None:
            if h not in hosts:
                hosts.append(h)
            devs.append(d["dev_id"])
    for n in names:
        uses.append(("MQTT broker of %s" % ", ".join(n), 1))
    if get("ocpp_url"):  # one WebSocket to the backend (its DNS lookup's UDP socket is closed before it opens)
        uses.append(("OCPP backend%s" % (" (TLS)" if ocpp_tls(get) else ""), 1))
    need = 0
    for _, n in uses:
        need += n
    # Modbus TCP devices: a connection per host:port while sockets last; the hosts past that connect per poll,
    # one at a time through one shared socket (devices/bus.py), so they never take the budget past its end
    own = len(hosts)
    if hosts:
        left = budget["sockets"] - need
        if own > left:
            own = left - 1 if left > 1 else 0
            uses.append(("Modbus TCP devices %s (%d host:port: %d connected, %d per poll on 1 shared socket)"
                         % (", ".join(devs), len(hosts), own, len(hosts) - own), own + 1))
        else:
            uses.append(("Modbus TCP devices %s (%d host:port)" % (", ".join(devs), len(hosts)), own))
        need += uses[-1][1]
    spare = budget["sockets"] - need
    grew = True
    while spare > 0 and grew:  # a client to each server, then a waiting place to each, round by round
        grew = False
        for i in (2, 3):
            for s in servers:
                if spare > 0 and s[i] < SERVER_MOST[i - 2]:
                    s[i] += 1
                    spare -= 1
                    grew = True
    return need, uses, servers, own


# ---- TLS sessions (board "tls_sessions"): each holds about 20-25 KB outside the GC heap, so the board's figure is
# a limit the store keeps, like the sockets. Settings holding a URL of their own that opens a TLS session when it
# is secure (wss://, https://) go in TLS_URL_KEYS, and the check and its error text need nothing else.
TLS_URL_KEYS = ("ocpp_url",)  # the OCPP central system (docs/ocpp.md)
_TLS_SCHEMES = ("wss://", "https://")
_TLS_RELATED = ("mqtt_url", "devices") + _BROKER_KEYS + TLS_URL_KEYS


def tls_plan(get):
    """-> (need, uses): the TLS sessions the settings hold at once: one per mqtts:// broker connection (shared
    as the sockets are), one per secure URL in TLS_URL_KEYS. uses: [(what, sessions)] for the error text."""
    uses = []
    brokers, names = _brokers(get)
    for i in range(len(brokers)):
        if brokers[i][0]:  # mqtts
            uses.append(("mqtts:// broker of %s" % ", ".join(names[i]), 1))
    for key in TLS_URL_KEYS:
        v = get(key)
        if isinstance(v, str) and v.strip().lower().startswith(_TLS_SCHEMES):
            uses.append((key, 1))
    return len(uses), uses


def tls_error(need, uses, budget):
    return "the configuration would hold %d TLS sessions at once, board %s has room for %d (each takes about " \
           "20-25 KB outside the heap): %s. Point the MQTT features at one broker, or use plain mqtt:// (OCPP: " \
           "ws://)" \
           % (need, budget.get("board", "?"), budget["tls_sessions"], "; ".join("%s: %d" % u for u in uses))


def _check_tls(values, new, budget, whole):
    blame = _first_set(_TLS_RELATED, new)
    if blame is None or budget.get("tls_sessions") is None:
        return
    need, uses = tls_plan(_merged(values, new))
    # as with the sockets: a change that frees sessions passes, a whole new configuration must fit
    if need > budget["tls_sessions"] and (whole or need >= tls_plan(values.get)[0]):
        raise ConfigError(blame, tls_error(need, uses, budget))


def ocpp_tls(get):
    """1 when the OCPP client holds a TLS session (a wss:// URL), else 0: for the board's TLS budget."""
    return 1 if get("ocpp_url").strip().lower().startswith(_TLS_SCHEMES) else 0


def socket_error(need, uses, budget):
    return "the configuration would need %d sockets, board %s has %d: %s. Free some: set a port to 0, or " \
           "point MQTT features at one broker" % (need, budget.get("board", "?"), budget["sockets"],
                                                              "; ".join("%s: %d" % u for u in uses))


def _first_set(keys, new):
    """The first of keys that a change sets (the field an error names), or None."""
    for k in keys:
        if k in new:
            return k
    return None


def _merged(values, new):
    """get(key) over the settings as they would be after the change."""
    return lambda k: new[k] if k in new else values[k]


def _check_sockets(values, new, budget, whole):
    blame = _first_set(_SOCKET_RELATED, new)
    if blame is None:
        return
    get = _merged(values, new)
    need, uses, _, _ = socket_plan(get, budget)
    # a change that frees sockets passes, so that a configuration over budget (stored on another board, or a
    # board's defaults) can be brought within it one setting at a time; a whole new configuration must fit
    if need > budget["sockets"] and (whole or need >= socket_plan(values.get, budget)[0]):
        raise ConfigError(blame, socket_error(need, uses, budget))


def check_together(values, new, ports=None, budget=None, whole=False):
    """Rules between settings, checked before a change is applied: values holds the current settings, new the
    normalized ones being set. Raises ConfigError naming a field being set. ports: the board's COM ports, or
    None (not known: that rule is skipped). budget: the board's socket budget (board.socket_budget), or None
    (not known: that rule is skipped). whole: new and the defaults in values are an installer's whole file."""
    if budget is not None:
        _check_sockets(values, new, budget, whole)
        _check_tls(values, new, budget, whole)
    blame = _first_set(_PROXY_RELATED, new)
    if blame is None:
        return
    get = _merged(values, new)

    text = get("modbus_proxy")
    if not text:
        return
    for ranges, port, com in parse_proxy(text):
        for lo, hi in ranges:
            why = proxy_conflict(lo, hi, port, get, ports if blame == "modbus_proxy" else None)
            if why is not None:
                if blame != "modbus_proxy":
                    why = "conflicts with modbus_proxy %r: %s" % (text, why)
                raise ConfigError(blame, why)


def _dev_id(value, row, path):
    if not isinstance(value, str) or len(value) < 2 or value[0] not in "EM" or not value[1:].isdigit() \
            or not 1 <= int(value[1:]) <= 99:
        raise ConfigError(path, "expected E1..E99 (wallbox) or M1..M99 (meter), got %r" % (value,))
    return value


def _device(dev, path):
    if not isinstance(dev, dict):
        raise ConfigError(path, "expected an object")
    if "dev_id" not in dev:
        raise ConfigError(path + ".dev_id", "required")
    kind = _dev_id(dev["dev_id"], None, path + ".dev_id")[0]
    for k in dev:
        row = _row(DEVICE_FIELDS, k)
        if row is None:
            raise ConfigError("%s.%s" % (path, k), "unknown key")
        if kind not in row[6]:
            raise ConfigError("%s.%s" % (path, k), "not allowed for a %s" % ("wallbox" if kind == "E" else "meter"))
    out = {}
    for row in DEVICE_FIELDS:
        if kind not in row[6]:
            continue
        k = row[0]
        if k in dev:
            out[k] = _check(row[1])(dev[k], row, "%s.%s" % (path, k))
        elif row[2] is None:
            raise ConfigError("%s.%s" % (path, k), "required")
        else:
            out[k] = _fresh(row)
    if kind == "E" and out["min_charging_cur"] > out["max_charging_cur"]:
        raise ConfigError(path + ".min_charging_cur", "must not exceed max_charging_cur")
    return out


def _devices(value, row, path):
    if not isinstance(value, list):
        raise ConfigError(path, "expected a list of devices")
    if len(value) > row[4]:
        raise ConfigError(path, "at most %d devices" % row[4])
    out = []
    seen = []
    boxes = 0
    for i, dev in enumerate(value):
        p = "%s[%d]" % (path, i)
        d = _device(dev, p)
        if d["dev_id"] in seen:
            raise ConfigError(p + ".dev_id", "duplicate %s" % d["dev_id"])
        seen.append(d["dev_id"])
        if d["dev_id"][0] == "E":
            boxes += 1
        out.append(d)
    if boxes > MAX_WALLBOXES:
        raise ConfigError(path, "at most %d wallboxes" % MAX_WALLBOXES)
    return out


def _number(value, row, path):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value in (float("inf"), float("-inf")):
        raise ConfigError(path, "expected a finite number, got %r" % (value,))
    return value


def _cm_vars(value, row, path):
    if not isinstance(value, list) or len(value) > row[4]:
        raise ConfigError(path, "expected a list of at most %d variables" % row[4])
    out = []
    names = []
    for i, v in enumerate(value):
        p = "%s[%d]" % (path, i)
        if not isinstance(v, dict):
            raise ConfigError(p, "expected an object with name and expr")
        for k in v:
            if k not in ("name", "expr"):
                raise ConfigError("%s.%s" % (p, k), "unknown key")
        name = v.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 40:
            raise ConfigError(p + ".name", "expected 1..40 characters")
        if name in names:
            raise ConfigError(p + ".name", "duplicate variable %r" % name)
        expr = v.get("expr", "")
        if not isinstance(expr, str) or len(expr) > 200:
            raise ConfigError(p + ".expr", "expected a formula of at most 200 characters")
        names.append(name)
        out.append({"name": name, "expr": expr})
    return out


def _ma3(value, row, path):
    if not isinstance(value, list) or len(value) != 3:
        raise ConfigError(path, "expected [L1, L2, L3] in mA")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or not row[3] <= v <= row[4]:
            raise ConfigError("%s[%d]" % (path, i), "expected an integer %d..%d mA, got %r" % (row[3], row[4], v))
    return list(value)


def _phase_limits(entry, path, key, lo, hi):
    if not isinstance(entry, dict):
        raise ConfigError(path, "expected an object with %s, l1, l2, l3" % key)
    for k in entry:
        if k not in (key, "l1", "l2", "l3"):
            raise ConfigError("%s.%s" % (path, k), "unknown key")
    out = {}
    for k, a, b in ((key, lo, hi), ("l1", 0, 1000000), ("l2", 0, 1000000), ("l3", 0, 1000000)):
        v = entry.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or not a <= v <= b:
            raise ConfigError("%s.%s" % (path, k), "expected an integer %d..%d, got %r" % (a, b, v))
        out[k] = v
    return out


def _schedule(value, row, path):
    if not isinstance(value, list) or len(value) > row[4]:
        raise ConfigError(path, "expected a list of at most %d entries" % row[4])
    if len(value) == 1:
        raise ConfigError(path, "a schedule needs at least 2 entries (or none)")
    out = [_phase_limits(e, "%s[%d]" % (path, i), "hour", 0, 23) for i, e in enumerate(value)]
    hours = [e["hour"] for e in out]
    if len(set(hours)) != len(hours):
        raise ConfigError(path, "two entries for the same hour")
    return sorted(out, key=lambda e: e["hour"])


def _group_limits(value, row, path):
    if not isinstance(value, list) or len(value) > row[4]:
        raise ConfigError(path, "expected a list of at most %d groups" % row[4])
    out = [_phase_limits(e, "%s[%d]" % (path, i), "group", 1, 16) for i, e in enumerate(value)]
    ids = [e["group"] for e in out]
    if len(set(ids)) != len(ids):
        raise ConfigError(path, "a group is listed twice")
    return out


def _json_object(value, row, path):
    if not isinstance(value, dict):
        raise ConfigError(path, "expected a JSON object")
    import json
    if len(json.dumps(value)) > row[4]:
        raise ConfigError(path, "larger than %d bytes" % row[4])
    return value


def _setpoint(value, row, path):
    # path is the key: setpoint.<dev_id>.<key>; whether the wallbox is configured is the command layer's check
    dev_id, dot, key = path[9:].partition(".")
    if not dot or len(dev_id) < 2 or dev_id[0] != "E" or not dev_id[1:].isdigit() or not 1 <= int(dev_id[1:]) <= 99:
        raise ConfigError(shown_key(path), "expected setpoint.E<n>.<%s>" % "|".join(r[0] for r in SETPOINT_FIELDS))
    r = _row(SETPOINT_FIELDS, key)
    if r is None:
        raise ConfigError(shown_key(path), "unknown set-point (known: %s)" % ", ".join(f[0] for f in SETPOINT_FIELDS))
    if isinstance(value, bool) or not isinstance(value, int) or not (r[1] <= value <= r[2] or value == r[3]):
        also = "" if r[3] is None else " or %d" % r[3]
        raise ConfigError(path, "expected an integer %d..%d%s, got %r" % (r[1], r[2], also, value))
    return value


def _cm_var(value, row, path):
    if len(path) > 7 + _VAR_NAME_MAX:
        raise ConfigError(shown_key(path), "variable name longer than %d characters" % _VAR_NAME_MAX)
    _number(value, row, path)
    if not -_VAR_MAX <= value <= _VAR_MAX:
        raise ConfigError(path, "out of range -1e15..1e15")
    return value


def _id_tag(value, row, path):
    from loadpilot.sessions import ids  # only when the tag is set
    try:
        return ids.tag(value)
    except ids.IdError as e:
        raise ConfigError(path, str(e))


def _check(kind):
    """kind -> its checker function. An if-chain (code, in flash when frozen) rather than a dict the import builds
    in RAM; the common kinds first."""
    if kind == "int":
        return _int
    if kind == "bool":
        return _bool
    if kind == "str":
        return _str
    if kind == "choice":
        return _choice
    if kind == "ident":
        return _ident
    if kind == "mqtt_url":
        return _mqtt_url
    if kind == "mqtt_broker":
        return _mqtt_broker
    if kind == "json_object":
        return _json_object
    if kind == "rtu_port":
        return _rtu_port
    if kind == "dev_id":
        return _dev_id
    if kind == "devices":
        return _devices
    if kind == "cm_vars":
        return _cm_vars
    if kind == "modbus_proxy":
        return _modbus_proxy
    if kind == "ma3":
        return _ma3
    if kind == "schedule":
        return _schedule
    if kind == "group_limits":
        return _group_limits
    if kind == "number":
        return _number
    if kind == "setpoint":
        return _setpoint
    if kind == "cm_var":
        return _cm_var
    if kind == "id_tag":
        return _id_tag
    if kind == "ws_url":
        return _ws_url
    if kind == "ocpp_id":
        return _ocpp_id
    if kind == "pem":
        return _pem
    if kind == "measurands":
        return _measurands
    raise KeyError(kind)


def validate(key, value, path=None):
    """Check one persistent setting; return the normalized value. Raises ConfigError naming the field."""
    row = field(key) if isinstance(key, str) else None
    if row is None:
        if isinstance(key, str) and is_volatile(key):
            raise ConfigError(key, "volatile value, never stored: set it through store.volatile")
        raise ConfigError(key, "unknown key")
    return _check(row[1])(value, row, path or key)


_NEW_CHECKS = {}  # key -> fn(value) raising ConfigError: checks from the layers above (schema.on_new)


def on_new(key, fn):
    """Register a check for values of key being set now, beyond their shape. The layer that knows the rule
    registers it (the app: devices.checks.check_devices), so the schema imports nothing above config/."""
    _NEW_CHECKS[key] = fn


def check_new(key, value):
    """The registered check for a normalized value being set now: for "devices" each device's driver, address
    and definition. A stored configuration is not put through it, so after an update that drops a driver the
    box still boots with its other devices (the device layer skips the one it cannot drive, with a log line)."""
    fn = _NEW_CHECKS.get(key)
    return value if fn is None else fn(value)


def validate_new(key, value):
    """validate() and check_new(): for a value an installer or an API sets."""
    return check_new(key, validate(key, value))


def validate_volatile(key, value):
    """Check one volatile value (shape and range; which devices and variables exist is the command layer's
    check). Raises ConfigError; a long key is echoed cut (shown_key)."""
    row = _row(VOLATILE_FIELDS, key) if isinstance(key, str) else None
    if row is None:
        if isinstance(key, str):
            for p, kind in VOLATILE_PREFIXES:
                if key.startswith(p) and len(key) > len(p):
                    return _check(kind)(value, None, key)
            if field(key) is not None:
                raise ConfigError(key, "persistent setting: set it through the store, not store.volatile")
        raise ConfigError(shown_key(key) if isinstance(key, str) else "volatile", "unknown volatile key")
    return _check(row[1])(value, row, key)


def validate_all(values):
    """Check a dict of settings (e.g. an installer's config.json): -> normalized dict. First error raises."""
    if not isinstance(values, dict):
        raise ConfigError("config", "expected a JSON object")
    out = {}
    for k in sorted(values):
        out[k] = validate_new(k, values[k])
    return out


def public_value(key, value):
    """The value as it may be shown (view, logs, API replies): secrets redacted."""
    row = field(key)
    if row is not None and value:
        if row[5] & SECRET:
            return REDACTED
        if row[5] & SECRET_URL:
            return redact(value)
    if key == "devices":
        return [_public_device(d) for d in value]
    if isinstance(value, list):
        return [dict(d) if isinstance(d, dict) else d for d in value]
    return value


def _public_device(dev):
    # a device's address (broker URL) and a user-defined meter's addresses may hold a password
    out = dict(dev)
    if "address" in out:
        out["address"] = redact(out["address"])
    if out.get("definition"):
        out["definition"] = _public_tree(out["definition"])
    return out


def _public_tree(v):
    # input documents are at most 16 levels deep (api/json_in.py), so this recursion is bounded
    if isinstance(v, str):
        return redact(v)
    if isinstance(v, dict):
        return dict((k, _public_tree(v[k])) for k in v)
    if isinstance(v, list):
        return [_public_tree(x) for x in v]
    return v


_SECRET_KEYS = tuple(r[0] for r in FIELDS if r[5] & (SECRET | SECRET_URL))


def wrap(key, value):
    """The value as Store.get() hands it out: secrets wrapped so printing them shows nothing."""
    if key in _SECRET_KEYS:
        return Secret(value, public_value(key, value))
    return value
