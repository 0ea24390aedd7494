# The codes every room shares, defined once: meter roles, wallbox states and the order of the site totals.
# They are the numbers the documents give (SPEC-NOTES: SunSpec server; reference/http-api.md get_dev_info).
from micropython import const

# meter roles (device field "role", SunSpec 213 +126 under ID+1)
ROLE_DISPLAY = const(0)
ROLE_CONSUMPTION = const(1)
ROLE_GENERATION = const(2)
ROLE_GRID = const(3)
ROLE_EV = const(4)
ROLE_STORAGE_HOME = const(5)
ROLE_STORAGE_ALL = const(6)

# wallbox state as every reporter shows it (get_dev_info "state", SunSpec 113 +62, set_ajax_evse "state")
ST_WAITING = const(1)      # no car (A)
ST_PLUGGED = const(2)      # car present (B)
ST_CHARGING = const(3)     # charging (C)
ST_VENTILATION = const(4)  # charging with ventilation (D)
ST_ERROR = const(5)        # error (E/F, residual current, contactor)
ST_OFFLINE = const(6)      # no communication; SunSpec 113 has no 6 and shows 5 (SPEC-NOTES)

# the seven model 213 totals under the SunSpec ID, in the seed's order (Site.totals has them in this order)
TOTALS = ("grid", "consumers", "generators", "pv_surplus", "evse_used", "evse_available", "fault")
T_GRID = const(0)
T_CONSUMERS = const(1)
T_GENERATORS = const(2)
T_PV_SURPLUS = const(3)
T_EVSE_USED = const(4)
T_EVSE_AVAILABLE = const(5)
T_FAULT = const(6)

# why a charging session ended, in OCPP 1.6 StopTransaction vocabulary (the journal stores the index; 0 = open).
# A session here runs from plug-in to unplug (EVDisconnected); PowerLoss is a session found open at boot; Reboot a
# planned stop; Other a wallbox removed from the configuration. Local, Remote and DeAuthorized are for OCPP.
# the measurands an OCPP MeterValues sample can hold (MeterValuesSampledData, MeterValuesAlignedData; ocpp/tx.py
# builds them); here so that the settings are checked without importing the OCPP client
OCPP_MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Current.Offered",
                   "Voltage")
STOP_REASONS = ("", "EVDisconnected", "PowerLoss", "Local", "Remote", "Reboot", "DeAuthorized", "Other")
STOP_OPEN = const(0)
STOP_EV_DISCONNECTED = const(1)
STOP_POWER_LOSS = const(2)
STOP_LOCAL = const(3)
STOP_REMOTE = const(4)
STOP_REBOOT = const(5)
STOP_DEAUTHORIZED = const(6)
STOP_OTHER = const(7)

# how a session was authorized (the authorizer's method codes, sessions/auth.py; the journal stores the index,
# so new codes go at the end; "" = not yet known). A code not in this tuple is journalled as "other".
AUTH_METHODS = ("", "free", "open", "enter_rfid", "http_input", "doubt", "whitelist", "ocpp", "fixed", "modbus",
                "admin", "other", "user")

# the address that makes a configured wallbox the board's own charge point (reference/http-api.md: "evse")
LOCAL_ADDRESS = "evse"
LOCAL_DEFAULT_ID = "E1"  # SPEC-NOTES: the local charge point is E1 unless configured otherwise


def local_evse_id(devices, has_evse):
    """The dev_id of the board's own charge point: the wallbox configured with address "evse", else E1 when
    the board has a charge point and no configured device is E1, else None."""
    if not has_evse:
        return None
    taken = False
    for d in devices:
        if d["dev_id"][0] == "E" and d.get("address") == LOCAL_ADDRESS:
            return d["dev_id"]
        if d["dev_id"] == LOCAL_DEFAULT_ID:
            taken = True
    return None if taken else LOCAL_DEFAULT_ID


def plugged(state):
    """A car is at the wallbox (B, C or D): the one rule sessions, authorization and overrides share."""
    return ST_PLUGGED <= state <= ST_VENTILATION


# how a session was authorized (Authorizer.auth_of; the session journal records it; docs/authorization.md)
AUTH_FREE = "free"              # free charging is on: every car charges at once
AUTH_OPEN = "open"              # the wallbox does not require authorization
AUTH_ENTER_RFID = "enter_rfid"  # an RFID or PIN from the whitelist, given with enter_rfid
AUTH_HTTP_INPUT = "http_input"  # an RFID from the whitelist, read by the wallbox itself (HTTP-input "rfid")
AUTH_DOUBT = "doubt"            # the ID could not be checked and "if in doubt allow charging" is on
AUTH_USER = "user"              # a user's ID (PIN) at a wallbox with users (sessions/users.py; idTag: the name)
# what get_dev_info "auth" shows for a wallbox
AUTH_STATES = ("none", "waiting", "timeout", "authorized")
AUTH_NONE = const(0)        # no car, nothing pending
AUTH_WAITING = const(1)     # a car waits for an RFID/PIN
AUTH_TIMEOUT = const(2)     # it waited longer than the vehicle connection timeout (still accepts an ID)
AUTH_AUTHORIZED = const(3)  # authorized (or pre-authorized, waiting for the car)

# A board whose GC heap is at most this (board file "heap_kb"; an ESP32 without PSRAM has about 112) sizes what
# it preallocates for a single box: the log ring (log.ring_lines) and the MQTT receive buffer (mqtt.max_packet).
SMALL_HEAP_KB = const(256)
