# ID validation and the one normal form. Every ID that enters the firmware passes normal(): the whitelist
# (add, CSV import), enter_rfid, a wallbox's own reader (HTTP-input "rfid"), override_device's user RFID/PIN,
# the free-charging tag and later OCPP idTags. The seed's rule (WHITELISTS, "Add entry"): a 4, 7 or 10 byte
# hex number with an optional postfix _1 or _2, the special tag INPUT_AUTH, or a MAC address. Normal form:
# uppercase hex without separators ("07:a4:77:31" and "07A47731" are one card), postfix kept as "_1"/"_2".
# A PIN is an ID like any other: digits are hex, so a PIN of 8, 14 or 20 digits is valid (docs/authorization.md).
from micropython import const

INPUT_AUTH = "INPUT_AUTH"
RULE = "give a 4, 7 or 10 byte hex number with optional postfix _1 or _2, the special tag INPUT_AUTH or a MAC " \
       "address"
MAX_TEXT = const(64)  # longer input is refused before it is looked at
_HEX = "0123456789ABCDEF"
_SEPARATORS = ":- "  # between bytes only: "07:A4:77:31", "AA-BB-CC-DD-EE-FF"
_HEX_LENGTHS = (8, 14, 20)  # 4, 7 and 10 bytes
_MAC_LENGTH = const(12)
RECORD = const(11)  # whitelist record: 10 payload bytes (zero padded) + 1 kind byte
_INPUT_AUTH_KIND = const(0xFF)


class IdError(ValueError):
    pass


def normal(text):
    """The normal form of an ID, or IdError saying what a valid ID is."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode()
        except UnicodeError:
            raise IdError("not a valid ID: " + RULE)
    if not isinstance(text, str):
        raise IdError("not a valid ID: expected text; " + RULE)
    if len(text) > MAX_TEXT:
        raise IdError("not a valid ID: longer than %d characters; %s" % (MAX_TEXT, RULE))
    u = text.strip().upper()
    if u == INPUT_AUTH:
        return u
    post = ""
    if len(u) > 2 and u[-2] == "_" and u[-1] in "12":
        post = u[-2:]
        u = u[:-2]
    run = 0  # hex digits since the last separator
    seps = False
    for c in u:
        if c in _SEPARATORS:
            if run == 0 or run & 1:  # a separator only between whole bytes
                raise IdError("not a valid ID %r: %s" % (text, RULE))
            run = 0
            seps = True
        elif c in _HEX:
            run += 1
        else:
            raise IdError("not a valid ID %r: %s" % (text, RULE))
    if seps:
        if run == 0 or run & 1:
            raise IdError("not a valid ID %r: %s" % (text, RULE))
        for s in _SEPARATORS:
            u = u.replace(s, "")
    n = len(u)
    if n in _HEX_LENGTHS or (n == _MAC_LENGTH and not post):
        return u + post
    raise IdError("not a valid ID %r: %s" % (text, RULE))


def kind(norm):
    """'RFID', 'MAC' or 'SPECIAL' for an ID in normal form (the whitelist's Type column)."""
    if norm == INPUT_AUTH:
        return "SPECIAL"
    return "MAC" if len(norm) == _MAC_LENGTH else "RFID"


def tag(text):
    """A tag the firmware sends as an OCPP idTag (free-charging tag): a valid ID in normal form, or another
    token of 1..20 printable characters (OCPP CiString20, compared without case: kept uppercase)."""
    try:
        return normal(text)
    except IdError:
        pass
    if isinstance(text, str):
        t = text.strip().upper()
        if 1 <= len(t) <= 20 and all(" " < c <= "~" and c not in ",;\"" for c in t):
            return t
    raise IdError("not a valid tag %r: an ID (%s) or 1..20 printable characters without spaces" % (text, RULE))


def record(norm):
    """The 11-byte whitelist record of an ID in normal form. Records sort like the IDs' text."""
    r = bytearray(RECORD)
    if norm == INPUT_AUTH:
        for i in range(RECORD):
            r[i] = 0xFF
        return bytes(r)
    post = 0
    if norm[-2:-1] == "_":
        post = int(norm[-1])
        norm = norm[:-2]
    n = len(norm) // 2
    for i in range(n):
        r[i] = int(norm[2 * i:2 * i + 2], 16)
    r[10] = n | (post << 4)
    return bytes(r)


def from_record(rec):
    """The normal form of an 11-byte record, or None for bytes that are no record."""
    k = rec[10]
    if k == _INPUT_AUTH_KIND:
        return INPUT_AUTH
    n = k & 0x0F
    post = k >> 4
    if n not in (4, 6, 7, 10) or post > 2 or (n == 6 and post):
        return None
    out = "".join("%02X" % rec[i] for i in range(n))
    return out + ("_%d" % post if post else "")
