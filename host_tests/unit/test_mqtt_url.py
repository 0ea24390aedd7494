import pytest

from loadpilot.mqtt import url
from loadpilot.mqtt.connections import Connections


@pytest.mark.parametrize("text,tls,version,host,port", [
    ("mqtt://192.168.2.111", False, 4, "192.168.2.111", 1883),
    ("mqtts://broker.local", True, 4, "broker.local", 8883),
    ("mqtt3://h:1884", False, 4, "h", 1884),
    ("mqtt5://h", False, 5, "h", 1883),
    ("mqtts3://h", True, 4, "h", 8883),
    ("mqtts5://h:9000/", True, 5, "h", 9000),
    ("MQTTS://H", True, 4, "H", 8883),
    ("10.0.0.2", False, 4, "10.0.0.2", 1883),
    ("10.0.0.2:1999", False, 4, "10.0.0.2", 1999),
    ("mqtt://[::1]:1885", False, 4, "::1", 1885),
    ("  mqtt://h  ", False, 4, "h", 1883),
])
def test_schemes_and_ports(text, tls, version, host, port):
    u = url.parse(text)
    assert (u.tls, u.version, u.host, u.port) == (tls, version, host, port)
    assert u.user is None and u.password is None


def test_user_and_password():
    u = url.parse("mqtt://user:password@192.168.2.111")
    assert (u.user, u.password, u.host, u.port) == ("user", "password", "192.168.2.111", 1883)
    u = url.parse("mqtts://admin@h:8884")
    assert (u.user, u.password, u.port) == ("admin", None, 8884)
    u = url.parse("mqtt://us%40er:p%3Aa%40ss%2F@h")  # escapes let a password hold ':', '@', '/'
    assert (u.user, u.password) == ("us@er", "p:a@ss/")
    u = url.parse("mqtt://u:p@ss@h")  # the last '@' ends the credentials
    assert (u.user, u.password, u.host) == ("u", "p@ss", "h")


def test_password_never_shown():
    u = url.parse("mqtts://alice:s3cr3t-pw@10.1.2.3:8884")
    for text in (repr(u), str(u), u.redacted(), "%s" % u, "%r" % [u], str(u.__dict__.get("host"))):
        assert "s3cr3t-pw" not in text
    assert "alice" in str(u) and "10.1.2.3" in str(u) and "8884" in str(u)
    assert "***" in repr(u)


@pytest.mark.parametrize("bad", ["", "   ", "http://h", "mqtt://", "mqtt://h:0", "mqtt://h:65536",
                                 "mqtt://h:x", "mqtt://h:", "mqtt://h/path", "mqtt://h?x=1", "mqtt://:pw@h",
                                 "mqtt://h h", "mqtt://[::1", "mqtt://[zz]:1", "mqtt://a..b", "mqtt://u:%zz@h",
                                 "mqtt://h:123456", None, 42])
def test_bad_urls_raise_clear_value_error(bad):
    with pytest.raises(ValueError) as e:
        url.parse(bad)
    assert str(e.value)


def test_errors_do_not_echo_the_password():
    for bad in ("mqtt://u:topsecret@h:99999", "mqtt://u:topsecret@h/p", "mqtt://u:top%zzsecret@h",
                "mqtt://u:topsecret@bad host"):
        with pytest.raises(ValueError) as e:
            url.parse(bad)
        assert "topsecret" not in str(e.value) and "top%zz" not in str(e.value)


def test_bare_word_mqtt_is_the_default_broker():
    u = url.parse("mqtt", default="mqtts://u:p@10.0.0.9")
    assert (u.tls, u.host, u.port, u.user) == (True, "10.0.0.9", 8883, "u")
    u = url.parse(" MQTT ", default="10.0.0.9:1999")
    assert (u.host, u.port) == ("10.0.0.9", 1999)
    with pytest.raises(ValueError, match="default broker"):
        url.parse("mqtt")
    with pytest.raises(ValueError, match="default broker"):
        url.parse("mqtt", default="mqtt")  # a default that points at itself


def test_numeric_hosts_need_no_dns_lookup():
    from loadpilot import dns  # the one rule for every client (MQTT, OCPP)
    assert dns.is_numeric("127.0.0.1") and dns.is_numeric("::1")
    assert not dns.is_numeric("broker.local") and not dns.is_numeric("1.2.3.256")
    assert not dns.is_numeric("1.2.3") and not dns.is_numeric("1..2.3")


def test_connections_share_one_client_per_broker():
    conns = Connections(default_url="mqtt://10.0.0.5")
    a = conns.get("mqtt")
    b = conns.get("mqtt://10.0.0.5:1883")
    c = conns.get("10.0.0.5")
    assert a is b is c
    d = conns.get("mqtts://10.0.0.5")
    e = conns.get("mqtt://u:p@10.0.0.5")
    assert d is not a and e is not a and e is not d
    assert len(conns.clients()) == 3
    assert all("p@" not in v["broker"] for v in conns.view())
    with pytest.raises(ValueError):
        conns.get("ftp://x")
