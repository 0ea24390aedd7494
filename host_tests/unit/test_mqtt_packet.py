import struct

import pytest
from hypothesis import given, strategies as st

from loadpilot.mqtt import packet
from loadpilot.mqtt.dedup import Dedup
from loadpilot.mqtt.client import Message


@pytest.mark.parametrize("n,encoded", [
    (0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"), (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f"),
])
def test_varint_edges(n, encoded):
    buf = bytearray(6)
    end = packet.put_varint(buf, 1, n)
    assert bytes(buf[1:end]) == encoded
    assert packet.varint_size(n) == len(encoded)
    assert packet.decode_varint(encoded) == (n, len(encoded))


def test_varint_out_of_range_and_malformed():
    with pytest.raises(ValueError):
        packet.put_varint(bytearray(6), 0, 268435456)
    with pytest.raises(ValueError):
        packet.put_varint(bytearray(6), 0, -1)
    with pytest.raises(ValueError):
        packet.decode_varint(b"\xff\xff\xff\xff\x01")  # a fifth byte is not allowed
    assert packet.decode_varint(b"\x80\x80") is None  # incomplete


@given(st.integers(0, 268435455))
def test_varint_roundtrip(n):
    buf = bytearray(5)
    end = packet.put_varint(buf, 0, n)
    assert packet.decode_varint(bytes(buf[:end])) == (n, end)


def _split(pkt):
    n, off = packet.decode_varint(pkt, 1)
    assert len(pkt) - off == n, "remaining length must match the body"
    return pkt[0], pkt[off:]


def test_connect_with_will_and_credentials():
    pkt = packet.connect("cid", 30, True, "user", "pw", "root/status", b"offline", 1, True)
    first, body = _split(pkt)
    assert first == 0x10
    assert body[:7] == b"\x00\x04MQTT\x04"
    flags = body[7]
    assert flags == 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    assert struct.unpack("!H", body[8:10])[0] == 30
    rest = body[10:]
    fields = []
    while rest:
        ln = struct.unpack("!H", rest[:2])[0]
        fields.append(rest[2:2 + ln])
        rest = rest[2 + ln:]
    assert fields == [b"cid", b"root/status", b"offline", b"user", b"pw"]


def test_connect_minimal():
    first, body = _split(packet.connect("x", 0))
    assert body[7] == 0x02 and body[10:] == b"\x00\x01x"


@pytest.mark.parametrize("plen", [0, 1, 100, 121, 122, 123, 16000, 16384, 70000])
def test_publish_roundtrip_across_length_boundaries(plen):
    payload = bytes(i & 0xFF for i in range(plen))
    for qos in (0, 1):
        pkt = packet.publish("a/b", payload, qos=qos, retain=True, dup=True, pid=513)
        first, body = _split(pkt)
        topic, q, retain, dup, pid, off = packet.parse_publish(first, body)
        assert (topic, q, retain) == ("a/b", qos, True)
        assert dup == bool(qos) and pid == (513 if qos else 0)  # DUP is only meaningful for QoS 1
        assert body[off:] == payload


def test_publish_header_matches_full_packet():
    head = packet.publish_header("t", 5, qos=1, pid=7)
    assert bytes(head) + b"hello" == packet.publish("t", b"hello", qos=1, pid=7)


def test_parse_publish_rejects_malformed():
    with pytest.raises(ValueError):
        packet.parse_publish(0x36, b"\x00\x01t\x00\x01")  # QoS 3
    with pytest.raises(ValueError):
        packet.parse_publish(0x30, b"\x00\x09ab")  # topic runs past the end
    with pytest.raises(ValueError):
        packet.parse_publish(0x32, b"\x00\x01t\x00")  # no packet id


def test_subscribe_and_puback():
    first, body = _split(packet.subscribe(10, [("a/#", 1), ("b", 0)]))
    assert first == 0x82
    assert body == b"\x00\x0a" + b"\x00\x03a/#\x01" + b"\x00\x01b\x00"
    assert bytes(packet.puback_into(bytearray(4), 0x1234)) == b"\x40\x02\x12\x34"


@pytest.mark.parametrize("pattern,topic,ok", [
    ("a/b", "a/b", True), ("a/+", "a/b", True), ("a/+", "a/b/c", False), ("a/#", "a/b/c", True),
    ("a/#", "a", True), ("#", "a/b", True), ("+/b", "a/b", True), ("a/b", "a/c", False),
    ("#", "$SYS/x", False), ("+/x", "$SYS/x", False),
])
def test_topic_matches(pattern, topic, ok):
    assert packet.topic_matches(pattern, topic) is ok


def _msg(pid, payload=b"cmd=x", qos=1, dup=False, topic="r/api/cmd"):
    return Message(topic, payload, qos, False, dup, pid)


def test_dedup_same_packet_id_and_payload_runs_once():
    d = Dedup()
    assert not d.is_duplicate(_msg(5), now_ms=1000)
    assert d.is_duplicate(_msg(5, dup=True), now_ms=1200)
    assert d.duplicates == 1
    # a new message reusing the packet id with another payload is not a duplicate
    assert not d.is_duplicate(_msg(5, b"cmd=y"), now_ms=1300)
    # outside the window the same id + payload is a new command
    assert not d.is_duplicate(_msg(5), now_ms=1000 + 31000)


def test_dedup_window_is_bounded_and_qos0_off_by_default():
    d = Dedup(size=4)
    for pid in range(1, 6):
        assert not d.is_duplicate(_msg(pid), now_ms=0)
    assert not d.is_duplicate(_msg(1), now_ms=10)  # pushed out of the 4-entry ring
    assert d.is_duplicate(_msg(5), now_ms=10)
    assert not d.is_duplicate(_msg(0, qos=0), now_ms=0)
    assert not d.is_duplicate(_msg(0, qos=0), now_ms=1)
    d0 = Dedup(qos0_window_ms=500)
    assert not d0.is_duplicate(_msg(0, qos=0), now_ms=0)
    assert d0.is_duplicate(_msg(0, qos=0), now_ms=100)


def test_pem_to_der():
    import base64
    from loadpilot.mqtt.client import pem_to_der
    der = bytes(range(200))
    pem = (b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n")
    assert pem_to_der(pem) == der
    assert pem_to_der(pem.decode()) == der
    assert pem_to_der(der) == der


def test_mqtt5_connect_publish_subscribe_layout():
    first, body = _split(packet.connect("c", 10, True, None, None, "s", b"offline", 1, True, version=5,
                                        max_packet=4096))
    assert body[6] == 5  # protocol level
    assert body[10:16] == b"\x05\x27" + struct.pack("!I", 4096)  # properties: Maximum Packet Size
    assert body[16:19] == b"\x00\x01c"
    assert body[19] == 0  # empty will properties before the will topic
    assert body[20:] == b"\x00\x01s\x00\x07offline"
    pkt = packet.publish("a/b", b"xyz", qos=1, pid=9, version=5)
    first, body = _split(pkt)
    assert body == b"\x00\x03a/b\x00\x09\x00xyz"
    assert packet.parse_publish(first, body, 5)[5] == len(body) - 3
    # incoming PUBLISH with a property block (here a 5-byte message-expiry property) is skipped
    body = b"\x00\x01t\x00\x02" + b"\x05\x02\x00\x00\x00\x3c" + b"payload"
    topic, qos, retain, dup, pid, off = packet.parse_publish(0x32, body, 5)
    assert (topic, pid, body[off:]) == ("t", 2, b"payload")
    with pytest.raises(ValueError):
        packet.parse_publish(0x30, b"\x00\x01t\x09\x01", 5)  # properties run past the packet
    first, body = _split(packet.subscribe(3, [("x", 1)], version=5))
    assert body == b"\x00\x03\x00\x00\x01x\x01"
