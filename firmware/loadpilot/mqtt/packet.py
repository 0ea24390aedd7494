# MQTT 3.1.1 packet encoding and decoding. Pure functions on bytes: no I/O, so CPython unit tests cover them.
import struct
from micropython import const

CONNECT = const(0x10)
CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBSCRIBE = const(0x82)  # SUBSCRIBE's fixed-header flags must be 0b0010
SUBACK = const(0x90)
UNSUBSCRIBE = const(0xA2)
UNSUBACK = const(0xB0)
PINGREQ = b"\xc0\x00"
PINGRESP = const(0xD0)
DISCONNECT = b"\xe0\x00"
MAX_REMAINING = const(268435455)  # four varint bytes

DISCONNECT_TYPE = const(0xE0)

# CONNACK return codes (3.1.1) and reason codes (5) -> text: a constant table, not a dict built at import
CONNACK_ERRORS = (
    (1, "unacceptable protocol version"), (2, "client identifier rejected"), (3, "server unavailable"),
    (4, "bad user name or password"), (5, "not authorized"), (0x80, "unspecified error"), (0x81, "malformed packet"),
    (0x82, "protocol error"), (0x84, "unsupported protocol version"), (0x85, "client identifier not valid"),
    (0x86, "bad user name or password"), (0x87, "not authorized"), (0x88, "server unavailable"),
    (0x89, "server busy"), (0x8A, "banned"), (0x8C, "bad authentication method"),
)
AUTH_CODES = (4, 5, 0x86, 0x87, 0x8A, 0x8C)
VERSION_REFUSED = (1, 0x84)  # "unacceptable protocol version" in 3.1.1 / 5 form


def connack_error(code):
    for c, text in CONNACK_ERRORS:
        if c == code:
            return text
    return "refused (%d)" % code


def varint_size(n):
    if n < 0 or n > MAX_REMAINING:
        raise ValueError("remaining length out of range")
    if n < 128:
        return 1
    if n < 16384:
        return 2
    if n < 2097152:
        return 3
    return 4


def put_varint(buf, off, n):
    """Write the remaining-length varint for n at buf[off]; return the offset after it."""
    varint_size(n)
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            buf[off] = b | 0x80
            off += 1
        else:
            buf[off] = b
            return off + 1


def decode_varint(buf, off=0):
    """(value, next offset), or None if buf ends inside the varint. ValueError past four bytes."""
    n = 0
    shift = 0
    for i in range(4):
        if off + i >= len(buf):
            return None
        b = buf[off + i]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, off + i + 1
        shift += 7
    raise ValueError("malformed remaining length")


def _b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def _str_field(parts, s):
    b = _b(s)
    if len(b) > 65535:
        raise ValueError("string field longer than 65535 bytes")
    parts.append(struct.pack("!H", len(b)))
    parts.append(b)
    return 2 + len(b)


def _frame(first, parts, size):
    head = bytearray(5)
    head[0] = first
    end = put_varint(head, 1, size)
    return bytes(head[:end]) + b"".join(parts)


def connect(client_id, keepalive_s, clean=True, user=None, password=None,
            will_topic=None, will_payload=b"", will_qos=0, will_retain=False, version=4, max_packet=0):
    """version 4 = MQTT 3.1.1, 5 = MQTT 5 (then max_packet, if set, goes out as Maximum Packet Size so the
    broker itself withholds larger messages)."""
    flags = 0x02 if clean else 0
    if will_topic:
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
    if user is not None:
        flags |= 0x80
        if password is not None:
            flags |= 0x40
    parts = [b"\x00\x04MQTT", bytes((version, flags)), struct.pack("!H", keepalive_s)]
    size = 10
    if version == 5:
        props = b"\x27" + struct.pack("!I", max_packet) if max_packet else b""
        parts.append(bytes((len(props),)) + props)
        size += 1 + len(props)
    size += _str_field(parts, client_id)
    if will_topic:
        if version == 5:
            parts.append(b"\x00")  # no will properties
            size += 1
        size += _str_field(parts, will_topic)
        size += _str_field(parts, will_payload)
    if user is not None:
        size += _str_field(parts, user)
        if password is not None:
            size += _str_field(parts, password)
    return _frame(CONNECT, parts, size)


def publish_header(topic, payload_len, qos=0, retain=False, dup=False, pid=0, version=4):
    """Fixed header + topic (+ packet id): the payload follows as payload_len bytes, possibly in chunks."""
    t = _b(topic)
    v5 = 1 if version == 5 else 0
    size = 2 + len(t) + payload_len + (2 if qos else 0) + v5
    first = PUBLISH | (qos << 1) | (1 if retain else 0) | (0x08 if dup and qos else 0)
    head = bytearray(5 + 2 + len(t) + 2 + v5)
    head[0] = first
    off = put_varint(head, 1, size)
    struct.pack_into("!H", head, off, len(t))
    off += 2
    head[off:off + len(t)] = t
    off += len(t)
    if qos:
        struct.pack_into("!H", head, off, pid)
        off += 2
    if v5:
        head[off] = 0  # no properties
        off += 1
    return head[:off]


def publish(topic, payload, qos=0, retain=False, dup=False, pid=0, version=4):
    p = _b(payload)
    return bytes(publish_header(topic, len(p), qos, retain, dup, pid, version)) + p


def subscribe(pid, topics, version=4):
    """topics: list of (topic, qos)."""
    parts = [struct.pack("!H", pid) + (b"\x00" if version == 5 else b"")]
    size = 3 if version == 5 else 2
    for t, q in topics:
        size += _str_field(parts, t)
        parts.append(bytes((q,)))
        size += 1
    return _frame(SUBSCRIBE, parts, size)


def unsubscribe(pid, topics, version=4):
    parts = [struct.pack("!H", pid) + (b"\x00" if version == 5 else b"")]
    size = 3 if version == 5 else 2
    for t in topics:
        size += _str_field(parts, t)
    return _frame(UNSUBSCRIBE, parts, size)


def puback_into(buf, pid):
    buf[0] = PUBACK
    buf[1] = 2
    buf[2] = pid >> 8
    buf[3] = pid & 0xFF
    return buf


def skip_properties(body, off):
    """Offset after an MQTT 5 property block starting at off."""
    r = decode_varint(body, off)
    if r is None or r[1] + r[0] > len(body):
        raise ValueError("properties run past the packet")
    return r[1] + r[0]


def parse_publish(first, body, version=4):
    """(topic str, qos, retain, dup, pid, payload offset in body). ValueError if malformed."""
    qos = (first >> 1) & 3
    if qos == 3:
        raise ValueError("PUBLISH with QoS 3")
    if len(body) < 2:
        raise ValueError("PUBLISH too short")
    tlen = (body[0] << 8) | body[1]
    off = 2 + tlen
    if off > len(body):
        raise ValueError("PUBLISH topic runs past the packet")
    topic = str(bytes(body[2:off]), "utf-8")
    pid = 0
    if qos:
        if off + 2 > len(body):
            raise ValueError("PUBLISH without packet id")
        pid = (body[off] << 8) | body[off + 1]
        off += 2
    if version == 5:
        off = skip_properties(body, off)
    return topic, qos, bool(first & 1), bool(first & 0x08), pid, off


def topic_matches(pattern, topic):
    """MQTT wildcard match: '+' one level, '#' the rest."""
    if pattern == topic:
        return True
    p = pattern.split("/")
    t = topic.split("/")
    for i in range(len(p)):
        if p[i] == "#":
            return not (i == 0 and t[0].startswith("$"))
        if i >= len(t):
            return False
        if p[i] == "+":
            if i == 0 and t[0].startswith("$"):
                return False
            continue
        if p[i] != t[i]:
            return False
    return len(p) == len(t)
