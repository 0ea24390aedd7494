"""The OCPP 1.6J client on the MicroPython binary against the real `ocpp` central system over `websockets`:
boot, heartbeat, configuration keys, availability across a reset, remote trigger, bad input, dead links,
Basic auth without the password leaking, TLS (profiles 2 and 3) and DNS that never blocks the loop."""
import json
import tempfile
import time

import pytest

from firmware_proc import Firmware, free_port, wait_for
from ocpp.v16 import call

from ocpp_peers import Backend, DnsServer, Proxy, RawWsServer, make_pki

pytestmark = pytest.mark.mp
PASSWORD = "pw-Xq7#secret"


def _config(url, **kw):
    c = {"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "ocpp_url": url, "ocpp_client_id": "CP1",
         "ocpp_password": PASSWORD}
    c.update(kw)
    return c


def _ocpp(fw):
    return fw.ctl("ocpp")


def _connected(fw, n=1, timeout=20):
    return wait_for(lambda: _ocpp(fw)["state"] == "connected" and _ocpp(fw)["connects"] >= n, timeout)


@pytest.fixture
def backend():
    b = Backend(password=PASSWORD, interval=3).start()
    yield b
    b.stop()


def _no_secret_anywhere(fw):
    everything = fw.read_output() + json.dumps(fw.ctl("config_get")) + json.dumps(fw.status()) + json.dumps(_ocpp(fw))
    assert PASSWORD not in everything


def test_off_costs_nothing():
    with Firmware(config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0}) as fw:
        assert not [m for m in fw.ctl("modules") if m.startswith("loadpilot.ocpp")]
        with pytest.raises(RuntimeError):
            fw.ctl("ocpp")


def test_boot_heartbeat_status_configuration_and_bad_input(backend):
    url = "ws://127.0.0.1:%d/ocpp" % backend.port
    with Firmware(config=_config(url, ocpp_ws_ping_s=0)) as fw:
        assert _connected(fw)
        # the Client ID is appended as the last path segment, the password goes as Basic auth
        assert wait_for(lambda: backend.boots, 10)
        assert backend.paths[-1] == "/ocpp/CP1"
        boot = backend.boots[0]
        assert boot["vendor"] == "LoadPilot" and boot["firmware_version"] and boot["charge_point_serial_number"]
        # heartbeats follow the interval the backend gave (3 s)
        n = len(backend.heartbeats)
        time.sleep(7)
        assert len(backend.heartbeats) - n >= 2
        assert _ocpp(fw)["heartbeat_s"] == 3 and _ocpp(fw)["boot"] == "Accepted"
        assert (0, "Available", "NoError") in backend.statuses and (1, "Available", "NoError") in backend.statuses
        assert abs(_ocpp(fw)["clock_offset_s"]) <= 2

        # configuration keys: all, some with an unknown one, change, read-only, unknown, invalid
        r = backend.call(call.GetConfiguration())
        keys = {k["key"]: k for k in r.configuration_key}
        assert keys["HeartbeatInterval"]["value"] == "0" and not keys["HeartbeatInterval"]["readonly"]
        assert keys["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True, "value": "1"}
        r = backend.call(call.GetConfiguration(key=["HeartbeatInterval", "NoSuchKey"]))
        assert [k["key"] for k in r.configuration_key] == ["HeartbeatInterval"] and r.unknown_key == ["NoSuchKey"]
        assert backend.call(call.ChangeConfiguration(key="HeartbeatInterval", value="5")).status == "Accepted"
        assert _ocpp(fw)["heartbeat_s"] == 5 and fw.ctl("config_get", key="ocpp_heartbeat_s") == 5
        assert backend.call(call.ChangeConfiguration(key="NumberOfConnectors", value="2")).status == "Rejected"
        assert backend.call(call.ChangeConfiguration(key="NoSuchKey", value="1")).status == "NotSupported"
        assert backend.call(call.ChangeConfiguration(key="HeartbeatInterval", value="-3")).status == "Rejected"
        assert backend.call(call.ChangeConfiguration(key="HeartbeatInterval", value="ten")).status == "Rejected"
        assert fw.ctl("config_get", key="ocpp_heartbeat_s") == 5

        # remote trigger, data transfer, unlock, clear cache
        n = len(backend.heartbeats)
        assert backend.call(call.TriggerMessage(requested_message="Heartbeat")).status == "Accepted"
        assert wait_for(lambda: len(backend.heartbeats) > n, 3)
        n = len(backend.statuses)
        assert backend.call(call.TriggerMessage(requested_message="StatusNotification",
                                                connector_id=1)).status == "Accepted"
        assert wait_for(lambda: len(backend.statuses) > n and backend.statuses[-1][0] == 1, 3)
        assert backend.call(call.TriggerMessage(requested_message="DiagnosticsStatusNotification")).status == \
            "NotImplemented"
        assert backend.call(call.DataTransfer(vendor_id="com.example")).status == "UnknownVendorId"
        assert backend.call(call.DataTransfer(vendor_id="LoadPilot", message_id="x")).status == "Rejected"
        assert backend.call(call.UnlockConnector(connector_id=1)).status == "NotSupported"
        assert backend.call(call.ClearCache()).status == "Accepted"

        # a DataTransfer of the box's own (the control op queues it; the answer shows in the view)
        fw.ctl("ocpp", data_transfer={"vendorId": "com.example", "messageId": "ping", "data": "hello"})
        assert wait_for(lambda: _ocpp(fw)["data_transfer"]["status"] == "Accepted", 5)
        assert _ocpp(fw)["data_transfer"]["data"] == "pong"
        assert backend.data_transfers[-1] == {"vendor_id": "com.example", "message_id": "ping", "data": "hello"}
        with pytest.raises(RuntimeError):
            fw.ctl("ocpp", data_transfer={"vendorId": "", "data": "x"})

        # unknown and not-yet-built actions, malformed frames: the right CALLERROR, within 1 s, nothing changed
        cases = [('[2,"u1","FlyToTheMoon",{}]', "u1", "NotImplemented"),
                 ('[2,"u2","GetDiagnostics",{"location":"ftp://x/"}]', "u2", "NotSupported"),
                 ('[2,"u9","SetChargingProfile",{"connectorId":1}]', "u9", "OccurenceConstraintViolation"),
                 ('[2,"u3","ChangeAvailability",{"connectorId":"one","type":"Inoperative"}]', "u3",
                  "TypeConstraintViolation"),
                 ('[2,"u4","ChangeAvailability",{"connectorId":1,"type":"Sideways"}]', "u4",
                  "PropertyConstraintViolation"),
                 ('[2,"u5","ChangeAvailability",{"type":"Inoperative"}]', "u5", "OccurenceConstraintViolation"),
                 ('[2,"u6","Reset",[]]', "u6", "FormationViolation"),
                 ('[2,"u7","Reset"]', "u7", "FormationViolation"),
                 ('{"not": "an array"}', "-1", "FormationViolation"),
                 ('this is not json', "-1", "FormationViolation"),
                 ('[7,"u8",{}]', "u8", "ProtocolError")]
        for text, uid, code in cases:
            msg, took = backend.raw_call(text, uid)
            assert msg is not None and msg[0] == 4 and msg[2] == code, (text, msg)
            assert took < 1.0
        assert _ocpp(fw)["operative"] is True and fw.ctl("config_get", key="ocpp_available") is True
        assert _ocpp(fw)["state"] == "connected" and _ocpp(fw)["connects"] == 1
        # every answer of ours passed the library's schema validation: it would have answered CALLERROR
        errors = [m for m in backend.frames if json.loads(m)[0] == 4]
        assert len(errors) == len(cases)

        # the password reached the backend, and nowhere else
        assert backend.auth_headers[-1].startswith("Basic ")
        assert fw.ctl("config_get", key="ocpp_password") == "***"
        _no_secret_anywhere(fw)


def test_the_car_and_faults_reach_the_backend_as_status(backend):
    with Firmware(config=_config("ws://127.0.0.1:%d/ocpp" % backend.port)) as fw:
        assert _connected(fw)
        assert wait_for(lambda: (1, "Available", "NoError") in backend.statuses, 10)

        def last():
            ours = [s for s in backend.statuses if s[0] == 1]
            return ours[-1] if ours else None
        fw.ctl("set_adc", name="cp", mv=9000)  # a car plugged in: B
        # Preparing until its transaction starts (free charging), SuspendedEVSE until the manager's first decision
        assert wait_for(lambda: last()[1] in ("Preparing", "SuspendedEVSE", "SuspendedEV"), 5)
        # its transaction starts (free charging), the box offers current, the car in B does not take it
        assert wait_for(lambda: last() == (1, "SuspendedEV", "NoError"), 8)
        time.sleep(0.2)
        fw.ctl("set_adc", name="cp", mv=6000)  # it asks for power: C
        assert wait_for(lambda: last() == (1, "Charging", "NoError"), 5)
        fw.ctl("set_input", name="rcd_trip", value=1)  # residual current: the EVSE opens and latches
        assert wait_for(lambda: last() == (1, "Faulted", "GroundFailure"), 5)
        fw.ctl("set_input", name="rcd_trip", value=0)
        fw.ctl("set_adc", name="cp", mv=12000)  # unplugged: the fault clears
        assert wait_for(lambda: last() == (1, "Available", "NoError"), 5)
        assert _ocpp(fw)["status"] == "Available"


def test_bad_input_does_not_grow_the_heap(backend):
    with Firmware(config=_config("ws://127.0.0.1:%d/ocpp" % backend.port, ocpp_ws_ping_s=0)) as fw:
        assert _connected(fw) and wait_for(lambda: backend.boots, 10)
        bad = ['nonsense %d', '[2,"x%d","NoSuchAction",{}]', '[2,"y%d","Reset",{"type":"Medium"}]',
               '[2,"z%d","GetConfiguration",{"key":[1,2]}]']

        def round_(n):
            for i in range(n):
                for b in bad:
                    backend.run(backend.cp()._connection.send(b % i if "%d" in b else b))
            time.sleep(1)
            return fw.ctl("status", gc=True)["heap"]["alloc"]
        round_(20)  # warm up: first-use allocations (answers' strings, the reader's state)
        before = round_(20)
        after = round_(100)
        assert after - before < 1024, (before, after)
        assert _ocpp(fw)["call_errors"] >= 560 and _ocpp(fw)["connects"] == 1


def test_availability_persists_across_a_reset(backend):
    url = "ws://127.0.0.1:%d/ocpp/" % backend.port
    fs = tempfile.mkdtemp(prefix="loadpilot-ocpp-")
    fw = Firmware(fs_dir=fs, config=_config(url)).start()
    try:
        assert _connected(fw)
        assert wait_for(lambda: (1, "Available", "NoError") in backend.statuses, 10)
        r = backend.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
        assert r.status == "Accepted"
        assert wait_for(lambda: backend.statuses[-1] == (1, "Unavailable", "NoError"), 5)
        assert fw.ctl("evse")["limit"]["ocpp_ma"] == 0  # the car gets no current
        backend.statuses.clear()
        assert backend.call(call.Reset(type="Hard")).status == "Accepted"
        assert wait_for(lambda: fw.proc.poll() is not None, 10)  # the unix HAL's reset ends the process
        assert fw.wait_output("Hard reset asked by the backend")
    finally:
        fw.stop()
    fw = Firmware(fs_dir=fs).start()  # the same flash: a reboot
    try:
        assert _connected(fw)
        assert wait_for(lambda: (1, "Unavailable", "NoError") in backend.statuses, 10)
        assert (0, "Unavailable", "NoError") in backend.statuses
        assert _ocpp(fw)["operative"] is False and fw.ctl("evse")["limit"]["ocpp_ma"] == 0
        assert backend.call(call.ChangeAvailability(connector_id=0, type="Operative")).status == "Accepted"
        assert wait_for(lambda: backend.statuses[-1][1] == "Available", 5)
        assert fw.ctl("evse")["limit"]["ocpp_ma"] is None
        assert backend.call(call.ChangeAvailability(connector_id=7, type="Operative")).status == "Rejected"
    finally:
        fw.stop()


# The reconnect backoff (5 s doubling to 5 min, plus jitter) at a tenth: the firmware's own backoff_ms, scaled,
# run before boot through mp_patched_main.py, so the test does not sit out 35 s of waiting.
FAST_BACKOFF = """
from loadpilot.ocpp import service
_backoff = service.backoff_ms
service.backoff_ms = lambda failures, rnd: _backoff(failures, rnd) // 10
"""


def test_dead_link_blackhole_and_drop_reconnect_without_reboot(backend):
    proxy = Proxy(backend)
    url = "ws://127.0.0.1:%d/ocpp" % proxy.port
    # the backend's interval is 3 s and pings are off here: only "2 x heartbeat without traffic" can see it
    with Firmware(config=_config(url, ocpp_ws_ping_s=0), patch=FAST_BACKOFF) as fw:
        assert _connected(fw)
        assert wait_for(lambda: backend.boots, 10)
        fw.ctl("loop_reset")
        proxy.mode = "blackhole"
        t0 = time.monotonic()
        assert wait_for(lambda: _ocpp(fw)["state"] != "connected", 2 * 3 + 10)
        detected = time.monotonic() - t0
        assert "link dead" in _ocpp(fw)["last_error"]
        assert detected <= 2 * 3 + 10
        # while blackholed, new connections are accepted and never answered: the client keeps trying, and gives
        # up on the WebSocket handshake after its timeout (10 s)
        n = proxy.accepted
        assert wait_for(lambda: proxy.accepted > n, 15)
        assert wait_for(lambda: "no WebSocket answer" in (_ocpp(fw)["last_error"] or ""), 15), _ocpp(fw)
        proxy.mode = "pass"
        assert _connected(fw, 2, 45)  # after the backoff
        assert len(backend.boots) == 1  # a reconnect is not a reboot: no second BootNotification
        # the backend drops TCP: reconnect again, after the third failure's backoff (20 s and up, scaled)
        c = _ocpp(fw)["connects"]
        dropped = time.monotonic()
        proxy.drop()
        assert wait_for(lambda: _ocpp(fw)["connects"] > c and _ocpp(fw)["state"] == "connected", 30)
        assert time.monotonic() - dropped >= 20000 // 10 / 1000  # not at once: the backoff grew
        assert fw.proc.poll() is None
        print("blackhole detected after %.1f s; loop %s" % (detected, fw.status()["loop"]))


def test_pings_detect_a_silent_backend_before_the_heartbeat_does(backend):
    backend.interval = 300  # heartbeats alone would need 600 s
    proxy = Proxy(backend)
    with Firmware(config=_config("ws://127.0.0.1:%d/ocpp" % proxy.port, ocpp_ws_ping_s=2)) as fw:
        assert _connected(fw)
        time.sleep(5)  # pings answered by the backend keep the link up
        assert _ocpp(fw)["state"] == "connected" and _ocpp(fw)["connects"] == 1
        proxy.mode = "blackhole"
        t0 = time.monotonic()
        assert wait_for(lambda: _ocpp(fw)["state"] != "connected", 20)
        assert time.monotonic() - t0 <= 2 + 10 + 2
        assert "ping" in _ocpp(fw)["last_error"]


def test_oversized_message_closes_with_1009_and_reconnects(backend):
    with Firmware(config=_config("ws://127.0.0.1:%d/ocpp" % backend.port)) as fw:
        assert _connected(fw)
        cp = backend.cp()
        big = json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "A" * 5000}])
        backend.run(cp._connection.send(big))
        assert wait_for(lambda: cp._connection.close_code is not None, 5)
        assert cp._connection.close_code == 1009
        assert _connected(fw, 2)
        assert fw.proc.poll() is None
        # a fragmented message within the limit is put together
        cp = backend.cp()
        msg = json.dumps([2, "frag", "DataTransfer", {"vendorId": "com.example", "data": "B" * 3000}])
        backend.run(cp._connection.send([msg[:1000], msg[1000:2000], msg[2000:]]))
        answer, _ = backend.raw_call('[2,"after","ClearCache",{}]', "after")
        assert answer is not None
        assert any(json.loads(m)[1] == "frag" and json.loads(m)[2] == {"status": "UnknownVendorId"}
                   for m in backend.frames if json.loads(m)[0] == 3)


@pytest.mark.parametrize("frame,code", [
    (b"\x81\x7f" + (2 ** 40).to_bytes(8, "big"), 1009),   # a text frame announcing a terabyte
    (b"\x81\x83abcd" + bytes(x ^ y for x, y in zip(b"abc", b"abcd")), 1002),  # masked by the server
    (b"\xc1\x02[]", 1002),                                 # a reserved bit set
    (b"\x89\x7e\x00\xc8" + b"p" * 200, 1002),             # a ping over 125 bytes
    (b"\x80\x02[]", 1002),                                 # a continuation with nothing to continue
])
def test_protocol_violations_close_with_the_right_code(frame, code):
    srv = RawWsServer(frame)
    try:
        with Firmware(config=_config("ws://127.0.0.1:%d/ocpp" % srv.port)) as fw:
            assert wait_for(lambda: srv.close_codes, 10)
            assert srv.close_codes[0] == code
            assert wait_for(lambda: _ocpp(fw)["last_error"], 5)
            assert fw.proc.poll() is None and _ocpp(fw)["state"] != "connected"
    finally:
        srv.stop()


def test_wrong_password_gets_401_logged_without_the_secret_and_backoff(backend):
    wrong = "wrong-Password-42"
    with Firmware(config=_config("ws://127.0.0.1:%d/ocpp" % backend.port, ocpp_password=wrong)) as fw:
        assert wait_for(lambda: backend.refused >= 1, 10)
        assert wait_for(lambda: "401" in (_ocpp(fw)["last_error"] or ""), 5)
        time.sleep(8)
        assert 2 <= backend.refused <= 3  # 0 s, 5 s (+jitter), then 10 s: backoff, not a storm
        out = fw.read_output()
        assert "401" in out and wrong not in out
        assert wrong not in json.dumps(fw.ctl("config_get")) + json.dumps(_ocpp(fw))
        # the right password is used at once, not after the backoff (now 10 s or more)
        fw.ctl("config_set", key="ocpp_password", value=PASSWORD)
        t0 = time.monotonic()
        assert _connected(fw)
        assert time.monotonic() - t0 < 4
        # a new URL (here: the Client ID in the path) takes effect on a live connection too
        fw.ctl("config_set", key="ocpp_client_id", value="CP2")
        assert wait_for(lambda: backend.paths[-1] == "/ocpp/CP2" and _ocpp(fw)["connects"] == 2, 5)
        assert PASSWORD not in fw.read_output()


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="ocpp-pki-")
    return make_pki(d)


def _tls_backend(pki, client_cert=False):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server"], pki["server_key"])
    if client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki["ca"])
    return Backend(password=PASSWORD, ssl_context=ctx).start()


def _pem(path):
    with open(path) as f:
        return f.read()


def test_tls_profiles(pki):
    b = _tls_backend(pki)
    try:
        url = "wss://localhost:%d/ocpp" % b.port
        with Firmware(config=_config(url)) as fw:  # no CA: encrypted, not verified, and the view says so
            assert _connected(fw) and _ocpp(fw)["tls"] == "not verified"
        # profile 2: a CA list (an unrelated CA first) that holds the server's CA
        cfg = _config(url, ocpp_tls_ca=_pem(pki["other_ca"]) + _pem(pki["ca"]))
        with Firmware(config=cfg) as fw:
            assert _connected(fw) and _ocpp(fw)["tls"] == "verified"
            assert fw.ctl("config_get", key="ocpp_tls_ca") == "***"
        with Firmware(config=_config(url, ocpp_tls_ca=_pem(pki["other_ca"]))) as fw:  # the wrong CA: refused
            assert wait_for(lambda: "TLS" in (_ocpp(fw)["last_error"] or ""), 15)
            assert _ocpp(fw)["connects"] == 0
    finally:
        b.stop()
    b = _tls_backend(pki, client_cert=True)
    try:
        url = "wss://localhost:%d/ocpp" % b.port
        cfg = _config(url, ocpp_tls_ca=_pem(pki["ca"]), ocpp_tls_cert=_pem(pki["client"]),
                      ocpp_tls_key=_pem(pki["client_key"]))
        with Firmware(config=cfg) as fw:  # profile 3: the client certificate is presented
            assert _connected(fw) and _ocpp(fw)["tls"] == "verified, client certificate"
            view = fw.ctl("config_get")["values"]
            assert view["ocpp_tls_key"] == "***" and view["ocpp_tls_cert"] == "***"
            key_body = _pem(pki["client_key"]).splitlines()[1]
            assert key_body not in fw.read_output() + json.dumps(view) + json.dumps(fw.status())
        with Firmware(config=_config(url, ocpp_tls_ca=_pem(pki["ca"]))) as fw:  # no client cert: refused
            assert wait_for(lambda: _ocpp(fw)["last_error"], 15)
            time.sleep(1)
            assert _ocpp(fw)["connects"] == 0
    finally:
        b.stop()


def test_dns_by_our_resolver_and_a_silent_dns_server(backend):
    dns = DnsServer({"backend.test": "127.0.0.1"})
    try:
        url = "ws://backend.test:%d/ocpp" % backend.port
        env = {"LOADPILOT_DNS": "127.0.0.1:%d" % dns.port}
        with Firmware(config=_config(url), env=env) as fw:
            assert _connected(fw)
            assert dns.queries >= 1
    finally:
        dns.stop()
    dead = DnsServer({}, silent=True)
    try:
        env = {"LOADPILOT_DNS": "127.0.0.1:%d" % dead.port}
        with Firmware(config=_config("ws://backend.test:%d/ocpp" % backend.port), env=env) as fw:
            fw.ctl("loop_reset")
            assert wait_for(lambda: "DNS" in (_ocpp(fw)["last_error"] or ""), 10)
            worst = fw.status()["loop"]["worst_ms"]
            assert worst < 1000  # getaddrinfo would have held the loop for the whole lookup
            print("loop worst %s ms during a silent DNS lookup" % worst)
    finally:
        dead.stop()


def test_settings_are_checked():
    with Firmware(config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0}) as fw:
        for key, bad in (("ocpp_url", "http://x/"), ("ocpp_url", "ws://user:pw@host/"), ("ocpp_url", "ws://h:0/"),
                         ("ocpp_client_id", "a/b"), ("ocpp_tls_ca", "not a certificate")):
            with pytest.raises(RuntimeError):
                fw.ctl("config_set", key=key, value=bad)
        plan = fw.ctl("sockets")
        assert not [u for u in plan["uses"] if "OCPP" in u["what"]]
