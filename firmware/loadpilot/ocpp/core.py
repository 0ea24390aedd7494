# OCPP-J 1.6 decision logic, pure: a frame in -> the answer and a list of effects out. It never touches the
# network, the flash or the EVSE; ocpp/service.py carries the effects out. What this round answers: Core
# without transactions, and Remote Trigger for the messages it sends. Transaction, authorization, local list
# and smart-charging actions come with the sessions journal and are answered NotSupported until then.
import json
from micropython import const

from loadpilot.codes import OCPP_MEASURANDS as MEASURANDS  # MeterValuesSampledData / MeterValuesAlignedData

CALL = const(2)
CALLRESULT = const(3)
CALLERROR = const(4)
MAX_KEYS = const(16)  # GetConfigurationMaxKeys
VENDOR_ID = const("LoadPilot")
PROFILES = const("Core,RemoteTrigger,LocalAuthListManagement,SmartCharging")  # const: KEYS stays a constant table
ID_STATUS = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")  # OCPP 1.6 AuthorizationStatus

# the backend's configuration keys this round implements: (key, kind, read-only, settings row, lo, hi).
# Kind "int" is a non-negative integer in s, "bool" is "true"/"false"; the settings row holds it (persisted
# through the config store).
KEYS = (
    ("HeartbeatInterval", "int", False, "ocpp_heartbeat_s", 0, 86400),
    ("MeterValueSampleInterval", "int", False, "ocpp_meter_interval_s", 0, 86400),
    ("MeterValuesSampledData", "csl", False, "ocpp_meter_measurands", 0, 0),
    ("MeterValuesSampledDataMaxLength", "const", True, None, len(MEASURANDS), 0),
    ("ClockAlignedDataInterval", "int", False, "ocpp_aligned_interval_s", 0, 86400),
    ("MeterValuesAlignedData", "csl", False, "ocpp_aligned_measurands", 0, 0),
    ("MeterValuesAlignedDataMaxLength", "const", True, None, len(MEASURANDS), 0),
    # transactionData holds the Begin/End meter from the flash outbox only; periodic and clock-aligned values go
    # as MeterValues (a flash record per sample to keep them for the Stop is not worth it): read-only, empty
    ("StopTxnSampledData", "const", True, None, "", 0),
    ("StopTxnAlignedData", "const", True, None, "", 0),
    ("WebSocketPingInterval", "int", False, "ocpp_ws_ping_s", 0, 3600),
    ("TransactionMessageAttempts", "int", False, "ocpp_tx_attempts", 1, 10),
    ("TransactionMessageRetryInterval", "int", False, "ocpp_tx_retry_s", 0, 86400),
    ("StopTransactionOnInvalidId", "const", True, None, "true", 0),
    ("AuthorizeRemoteTxRequests", "const", True, None, "false", 0),
    ("LocalAuthorizeOffline", "bool", False, "ocpp_local_auth_offline", 0, 0),
    ("LocalPreAuthorize", "bool", False, "ocpp_local_preauthorize", 0, 0),
    ("AllowOfflineTxForUnknownId", "bool", False, "ocpp_allow_offline_unknown", 0, 0),
    ("AuthorizationCacheEnabled", "bool", False, "ocpp_auth_cache", 0, 0),
    ("LocalAuthListEnabled", "bool", False, "ocpp_local_list", 0, 0),
    ("LocalAuthListMaxLength", "const", True, None, 100, 0),
    ("SendLocalListMaxLength", "const", True, None, 50, 0),  # 50 entries of 20-character tags fit in 4 KB
    ("NumberOfConnectors", "const", True, None, 1, 1),
    ("SupportedFeatureProfiles", "const", True, None, PROFILES, 0),
    ("GetConfigurationMaxKeys", "const", True, None, MAX_KEYS, 0),
)
# actions of the profiles LoadPilot will answer once sessions and authorization are merged: recognized, so
# the backend gets NotSupported (known, not supported yet) rather than NotImplemented (unknown)
LATER = (
         "GetDiagnostics",
         "UpdateFirmware", "ReserveNow", "CancelReservation")
TRIGGERS = ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues")
NOT_TRIGGERABLE = ("DiagnosticsStatusNotification", "FirmwareStatusNotification")

# EVSE fault (evse/state_machine.ERROR_NAMES) -> StatusNotification errorCode
_FAULT_CODES = (("rcd_trip", "GroundFailure"), ("diode_fault", "EVCommunicationError"),
                ("cp_short_e", "EVCommunicationError"), ("cp_state_f", "EVCommunicationError"),
                ("contactor_welded", "PowerSwitchFailure"), ("contactor_did_not_close", "PowerSwitchFailure"))

# effects
E_AVAILABILITY = "availability"  # (E_AVAILABILITY, operative: bool)
E_CONFIG = "config"              # (E_CONFIG, settings row, int value)
E_RESET = "reset"                # (E_RESET, "Hard" | "Soft")
E_TRIGGER = "trigger"            # (E_TRIGGER, message, connector id or None)
E_CLEAR_CACHE = "clear_cache"    # (E_CLEAR_CACHE,)
E_REMOTE_START = "remote_start"  # (E_REMOTE_START, idTag)
E_REMOTE_STOP = "remote_stop"    # (E_REMOTE_STOP, transactionId)
E_PROFILES = "profiles"          # (E_PROFILES,): the charging profiles changed: store them, apply the limit


class FrameError(Exception):
    """A frame that cannot be handled: answered with CALLERROR code (uid "-1" when no id could be read)."""

    def __init__(self, uid, code, text):
        super().__init__(text)
        self.uid = uid
        self.code = code


# ChargePointStatus in OCPP 1.6's enumeration order: its index is what OMCCI 104 reads (registers/evse_slave.py)
STATUS_NAMES = ("Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Reserved",
                "Unavailable", "Faulted")


def parse(text):
    """-> (CALL, uid, action, payload) | (CALLRESULT, uid, payload) | (CALLERROR, uid, code, description).
    Raises FrameError for anything else. text: str or bytes."""
    try:
        msg = json.loads(text)
    except (ValueError, TypeError):
        raise FrameError("-1", "FormationViolation", "not JSON")
    if not isinstance(msg, list) or len(msg) < 3 or not isinstance(msg[0], int) or not isinstance(msg[1], str):
        raise FrameError("-1", "FormationViolation", "not an OCPP-J message array")
    kind, uid = msg[0], msg[1]
    if len(uid) > 36:  # OCPP-J 4.1.3: a unique id is at most 36 characters
        raise FrameError("-1", "FormationViolation", "message id over 36 characters")
    if kind == CALL:
        if len(msg) != 4 or not isinstance(msg[2], str):
            raise FrameError(uid, "FormationViolation", "a CALL is [2, id, action, payload]")
        if not isinstance(msg[3], dict):
            raise FrameError(uid, "FormationViolation", "payload is not an object")
        return CALL, uid, msg[2], msg[3]
    if kind == CALLRESULT and len(msg) == 3 and isinstance(msg[2], dict):
        return CALLRESULT, uid, msg[2]
    if kind == CALLERROR and len(msg) >= 4:
        return CALLERROR, uid, str(msg[2]), str(msg[3])
    raise FrameError(uid, "FormationViolation" if kind in (CALL, CALLRESULT, CALLERROR) else "ProtocolError",
                     "unknown message type or shape")


def call(uid, action, payload):
    return json.dumps([CALL, uid, action, payload])


def result(uid, payload):
    return json.dumps([CALLRESULT, uid, payload])


def error(uid, code, text):
    return json.dumps([CALLERROR, uid, code, text, {}])


def _field(p, name, kind, required=True):
    v = p.get(name)
    if v is None:
        if required:
            raise FrameError(None, "OccurenceConstraintViolation", "%s is required" % name)
        return None
    if kind is int and (not isinstance(v, int) or isinstance(v, bool)) or kind is not int and not isinstance(v, kind):
        raise FrameError(None, "TypeConstraintViolation", "%s has the wrong type" % name)
    return v


def _choice(p, name, allowed):
    v = _field(p, name, str)
    if v not in allowed:
        raise FrameError(None, "PropertyConstraintViolation", "%s must be one of %s" % (name, ", ".join(allowed)))
    return v


def _key_row(key):
    for r in KEYS:
        if r[0] == key:
            return r
    return None


class Core:
    """The charge point's answers. get(row) reads a setting (config store); connector is ours (ocpp_connector
    _id); operative is the persisted availability."""

    def __init__(self, get, connector=1, operative=True):
        self.get = get
        self.connector = connector
        self.operative = operative
        self.open_tx = None  # () -> (the open transaction's id or None, a session or transaction is running)
        self.list_version = None  # () -> the local list's version (ocpp/locallist.py), read on first use
        self.list_update = None   # (full, version, items) -> "Accepted" | "Failed": stores the list
        self.charging = None      # () -> (ocpp/charging.Profiles loaded on first use, Unix s now, box max mA)
        self.tx_start = None      # () -> Unix s the open transaction started

    def value(self, row):
        if row[1] == "const":
            return str(row[4])
        v = self.get(row[3])
        return ("true" if v else "false") if row[1] == "bool" else str(v)

    def answer(self, action, payload):
        """A CALL's answer: -> (payload dict, effects) or raises FrameError (uid None: the caller's)."""
        fn = getattr(self, "_on_" + action, None) if action[:1].isupper() else None
        if fn is None:
            if action in LATER:
                raise FrameError(None, "NotSupported", "%s comes with the sessions journal" % action)
            raise FrameError(None, "NotImplemented", "unknown action %s" % action)
        return fn(payload)

    def _ours(self, cid):
        return cid == 0 or cid == self.connector

    def _on_ChangeAvailability(self, p):
        cid = _field(p, "connectorId", int)
        want = _choice(p, "type", ("Inoperative", "Operative")) == "Operative"
        if not self._ours(cid):
            return {"status": "Rejected"}, ()
        self.operative = want
        return {"status": "Accepted"}, ((E_AVAILABILITY, want),)

    def _on_ChangeConfiguration(self, p):
        key = _field(p, "key", str)
        value = _field(p, "value", str)
        if len(key) > 50 or len(value) > 500:  # CiString50 / CiString500
            raise FrameError(None, "PropertyConstraintViolation", "key or value too long")
        row = _key_row(key)
        if row is None:
            return {"status": "NotSupported"}, ()
        if row[2]:
            return {"status": "Rejected"}, ()
        if row[1] == "csl":  # a comma-separated list of known measurands, each once
            items = value.split(",")
            for i in range(len(items)):
                if items[i] not in MEASURANDS or items[i] in items[:i]:
                    return {"status": "Rejected"}, ()
            return {"status": "Accepted"}, ((E_CONFIG, row[3], value),)
        if row[1] == "bool":
            v = value.lower()
            if v not in ("true", "false"):
                return {"status": "Rejected"}, ()
            return {"status": "Accepted"}, ((E_CONFIG, row[3], v == "true"),)
        if not value.isdigit() or len(value) > 6 or not row[4] <= int(value) <= row[5]:
            return {"status": "Rejected"}, ()
        return {"status": "Accepted"}, ((E_CONFIG, row[3], int(value)),)

    def _on_GetConfiguration(self, p):
        keys = _field(p, "key", list, False)
        known = []
        unknown = []
        if keys is None:
            for r in KEYS:
                known.append({"key": r[0], "readonly": r[2], "value": self.value(r)})
        else:
            if len(keys) > MAX_KEYS:
                raise FrameError(None, "OccurenceConstraintViolation", "at most %d keys" % MAX_KEYS)
            for k in keys:
                if not isinstance(k, str):
                    raise FrameError(None, "TypeConstraintViolation", "key entries are strings")
                r = _key_row(k)
                if r is None:
                    unknown.append(k)
                else:
                    known.append({"key": r[0], "readonly": r[2], "value": self.value(r)})
        out = {"configurationKey": known}
        if unknown:
            out["unknownKey"] = unknown
        return out, ()

    def _on_Reset(self, p):
        kind = _choice(p, "type", ("Hard", "Soft"))
        return {"status": "Accepted"}, ((E_RESET, kind),)

    def _on_TriggerMessage(self, p):
        msg = _field(p, "requestedMessage", str)
        cid = _field(p, "connectorId", int, False)
        if msg not in TRIGGERS:
            if msg in NOT_TRIGGERABLE:
                return {"status": "NotImplemented"}, ()
            raise FrameError(None, "PropertyConstraintViolation", "unknown requestedMessage")
        if cid is not None and not self._ours(cid):
            return {"status": "Rejected"}, ()
        if msg == "MeterValues" and self.open_tx is None:  # no session journal attached: no meter to sample
            return {"status": "Rejected"}, ()
        return {"status": "Accepted"}, ((E_TRIGGER, msg, cid),)

    def _on_UnlockConnector(self, p):
        cid = _field(p, "connectorId", int)
        # the Smart Controller boards have no socket lock actuator (boards/*.json outputs)
        return {"status": "NotSupported" if self._ours(cid) and cid else "UnlockFailed"}, ()

    def _on_DataTransfer(self, p):
        vendor = _field(p, "vendorId", str)
        _field(p, "messageId", str, False)
        # no vendor extension is defined: our own vendor id is known (Rejected), any other one is not
        return {"status": "Rejected" if vendor == VENDOR_ID else "UnknownVendorId"}, ()

    def _on_RemoteStartTransaction(self, p):
        tag = _field(p, "idTag", str)
        cid = _field(p, "connectorId", int, False)
        if not 0 < len(tag) <= 20:  # IdToken: CiString20
            raise FrameError(None, "PropertyConstraintViolation", "idTag: 1..20 characters")
        if cid is not None and cid != self.connector or not self.operative or self.open_tx is None:
            return {"status": "Rejected"}, ()
        if self.open_tx()[1]:  # a transaction runs at our connector already
            return {"status": "Rejected"}, ()
        cp = p.get("chargingProfile")
        if cp is not None:  # the TxProfile of the transaction to come: checked now, set when it has its id
            from loadpilot.ocpp.charging import check_remote
            if self.charging is None or not check_remote(cp, self.connector):
                return {"status": "Rejected"}, ()
            return {"status": "Accepted"}, ((E_REMOTE_START, tag, cp),)
        return {"status": "Accepted"}, ((E_REMOTE_START, tag),)

    def _on_RemoteStopTransaction(self, p):
        txid = _field(p, "transactionId", int)
        if self.open_tx is None or self.open_tx()[0] != txid:
            return {"status": "Rejected"}, ()
        return {"status": "Accepted"}, ((E_REMOTE_STOP, txid),)

    def _on_SetChargingProfile(self, p):
        from loadpilot.ocpp.charging import answer_set  # imported on the first smart-charging call
        return answer_set(self, p)

    def _on_ClearChargingProfile(self, p):
        from loadpilot.ocpp.charging import answer_clear
        return answer_clear(self, p)

    def _on_GetCompositeSchedule(self, p):
        from loadpilot.ocpp.charging import answer_composite
        return answer_composite(self, p)

    def _on_GetLocalListVersion(self, p):
        from loadpilot.ocpp.locallist import answer_version  # rare: imported on the first one
        return answer_version(self, p)

    def _on_SendLocalList(self, p):
        from loadpilot.ocpp.locallist import answer_send
        return answer_send(self, p)

    def _on_ClearCache(self, p):
        # no authorization cache exists before the sessions round: an empty cache is cleared by definition
        return {"status": "Accepted"}, ((E_CLEAR_CACHE,),)

    def status(self, state, fault, phase=0, offered_ma=None):
        """(status, errorCode) for our connector from the local EVSE's codes.ST_* state and fault name, the
        transaction's phase (tx.TX_NONE, TX_RUNNING, TX_ENDED: ended while the car is still plugged) and the
        current the box offers now (the CP PWM; None: unknown, taken as offering)."""
        from loadpilot import codes
        if fault and fault != "none":
            for name, code in _FAULT_CODES:
                if name == fault:
                    return "Faulted", code
            return "Faulted", "OtherError"
        if state == codes.ST_ERROR:
            return "Faulted", "OtherError"
        if not self.operative or state == codes.ST_OFFLINE:
            return "Unavailable", "NoError"
        if state == codes.ST_PLUGGED or state == codes.ST_CHARGING or state == codes.ST_VENTILATION:
            if phase == 2:  # the transaction ended (RemoteStop, a refused idTag) and the car is still plugged
                return "Finishing", "NoError"
            if offered_ma == 0 and (phase or state != codes.ST_PLUGGED):  # the box (manager, Modbus, OCPP) offers 0 A
                return "SuspendedEVSE", "NoError"
            if state != codes.ST_PLUGGED:
                return "Charging", "NoError"
            # a transaction runs, current is offered and the car does not take it (state B): the car pauses
            return ("SuspendedEV" if phase else "Preparing"), "NoError"
        return "Available", "NoError"


def data_transfer_payload(vendor_id, message_id=None, data=None):
    """A DataTransfer request (OCPP 1.6 6.17: vendorId CiString255, messageId CiString50, data text)."""
    if not isinstance(vendor_id, str) or not 0 < len(vendor_id) <= 255:
        raise ValueError("vendorId: 1..255 characters")
    p = {"vendorId": vendor_id}
    if message_id is not None:
        if not isinstance(message_id, str) or len(message_id) > 50:
            raise ValueError("messageId: at most 50 characters")
        p["messageId"] = message_id
    if data is not None:
        if not isinstance(data, str) or len(data) > 2048:
            raise ValueError("data: text of at most 2048 characters")
        p["data"] = data
    return p


def boot_payload(model, serial, firmware):
    return {"chargePointVendor": VENDOR_ID, "chargePointModel": model[:20], "chargePointSerialNumber": serial[:25],
            "chargeBoxSerialNumber": serial[:25], "firmwareVersion": firmware[:50]}


def parse_time(text):
    """An ISO 8601 UTC time (2026-11-26T13:32:33.123Z or with +hh:mm) -> Unix seconds; ValueError if not."""
    if not isinstance(text, str) or len(text) < 19 or text[4] != "-" or text[10] not in "Tt" or text[13] != ":":
        raise ValueError("not an ISO 8601 time")
    y, mo, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
    h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
    tail = text[19:]
    if tail[:1] == ".":
        i = 1
        while i < len(tail) and tail[i].isdigit():
            i += 1
        tail = tail[i:]
    off = 0
    if tail and tail[0] in "+-" and len(tail) >= 6:
        off = (int(tail[1:3]) * 60 + int(tail[4:6])) * 60 * (1 if tail[0] == "+" else -1)
    elif tail not in ("", "Z", "z"):
        raise ValueError("bad time zone")
    # days from the civil date (proleptic Gregorian), so no port's mktime epoch or time zone matters
    yy = y - 1 if mo <= 2 else y
    era = yy // 400
    yoe = yy - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + h * 3600 + mi * 60 + s - off
