"""The OCPP client's pure parts on the MicroPython binary: URLs and the Client ID, Basic auth, the WebSocket
accept key and masking, DNS answers, ISO 8601 times and the status mapping."""
import base64
import calendar
import json

import pytest

from firmware_proc import run_snippet

pytestmark = pytest.mark.mp


def mp(code):
    rc, out = run_snippet("import json\n" + code)
    assert rc == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_url_client_id_and_basic_auth():
    r = mp("""
from loadpilot.ocpp import url
out = []
for u, cid in (("ws://h/ocpp", "CP1"), ("ws://h/ocpp/", "CP1"), ("ws://h/ocpp/CP1", "CP1"), ("ws://h", "CP1"),
               ("wss://h:8443/a/b", "X"), ("ws://[::1]:9000/x", "CP1"), ("ws://xyz123.backend.com/", "")):
    out.append(list(url.parse(u, cid)))
errs = []
for u in ("http://h/", "ws://user:pw-secret@h/", "ws://h:0/", "ws://h:99999/", "ws:///x", "ws://h/x?y=1"):
    try:
        url.parse(u, "CP1")
        errs.append(None)
    except ValueError as e:
        errs.append(str(e))
print(json.dumps([out, errs, url.basic_auth("CP1", "p:w").decode()]))
""")
    out, errs, auth = r
    assert out == [[False, "h", 80, "/ocpp/CP1"], [False, "h", 80, "/ocpp/CP1"], [False, "h", 80, "/ocpp/CP1"],
                   [False, "h", 80, "/CP1"], [True, "h", 8443, "/a/b/X"], [False, "::1", 9000, "/x/CP1"],
                   [False, "xyz123.backend.com", 80, "/"]]
    assert None not in errs and not any("pw-secret" in e for e in errs)
    assert auth == "Basic " + base64.b64encode(b"CP1:p:w").decode()


def test_accept_key_masking_and_frames():
    r = mp("""
from loadpilot.ocpp import dial, ws
acc = dial.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==").decode()
ok = True
for n in range(0, 13):
    for start in (4, 5, 7):
        b = bytearray(start + n)
        b[0:4] = b"\\x01\\x80\\xfe\\x37"
        for i in range(n):
            b[start + i] = (i * 37) & 0xFF
        ws.mask_into(b, start, n, 0)
        want = bytes(((i * 37) & 0xFF) ^ b"\\x01\\x80\\xfe\\x37"[i & 3] for i in range(n))
        ok = ok and bytes(b[start:]) == want
req = dial.upgrade_request("h", 80, False, "/ocpp/CP1", b"k==", b"Basic eA==").decode()
errs = []
for head in (b"HTTP/1.1 401 Unauthorized\\r\\n\\r\\n", b"HTTP/1.1 101 OK\\r\\nSec-WebSocket-Accept: x\\r\\n\\r\\n",
             b"HTTP/1.1 101 OK\\r\\nSec-WebSocket-Accept: " + dial.accept_key(b"k==") + b"\\r\\n\\r\\n",
             b"garbage\\r\\n\\r\\n"):
    try:
        dial.check_answer(head, b"k==")
        errs.append(None)
    except ws.WsError as e:
        errs.append(str(e))
print(json.dumps([acc, ok, req, errs]))
""")
    acc, ok, req, errs = r
    assert acc == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3's example
    assert ok
    assert req.startswith("GET /ocpp/CP1 HTTP/1.1\r\nHost: h\r\n") and "Sec-WebSocket-Protocol: ocpp1.6\r\n" in req
    assert "Authorization: Basic eA==\r\n" in req and req.endswith("\r\n\r\n")
    assert "401" in errs[0] and "Accept" in errs[1] and "subprotocol" in errs[2] and errs[3]


def test_dns_answers():
    r = mp("""
from loadpilot import dns, dns_query
q = dns_query.query("backend.test", 0x1234)
# an answer: header, the question, a CNAME then an A record, names compressed
a = bytes(b"\\x12\\x34\\x81\\x80\\x00\\x01\\x00\\x02\\x00\\x00\\x00\\x00") + q[12:]
a += b"\\xc0\\x0c\\x00\\x05\\x00\\x01\\x00\\x00\\x00\\x3c\\x00\\x02\\xc0\\x0c"
a += b"\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x3c\\x00\\x04\\x0a\\x01\\x02\\x03"
out = [dns_query.answer(a, 0x1234)]
for bad in (a[:8], b"\\x12\\x35" + a[2:], b"\\x12\\x34\\x81\\x83" + a[4:], a[:-6]):
    try:
        dns_query.answer(bad, 0x1234)
        out.append(None)
    except dns_query.DnsError as e:
        out.append(str(e))
print(json.dumps([out, dns.is_numeric("10.0.0.1"), dns.is_numeric("a.b.c.d"), list(q[12:])]))
""")
    out, num, name, qname = r
    assert out[0] == "10.1.2.3"
    assert all(out[1:]) and "no such name" in out[3]
    assert num and not name
    assert bytes(qname) == b"\x07backend\x04test\x00\x00\x01\x00\x01"


def test_times_and_status_mapping():
    r = mp("""
from loadpilot.ocpp import core
from loadpilot import codes
t = [core.parse_time(s) for s in ("2026-11-26T13:32:33Z", "2026-11-26T13:32:33.123Z", "2026-11-26T14:32:33+01:00",
                                  "2000-02-29T00:00:00Z", "1999-12-31T23:59:59.5-00:30")]
bad = 0
for s in ("yesterday", "2026-11-26 13:32:33", 5, "2026-11-26T13:32:33 CET"):
    try:
        core.parse_time(s)
    except (ValueError, TypeError):
        bad += 1
c = core.Core(lambda k: 0)
st = [c.status(codes.ST_WAITING, "none"), c.status(codes.ST_PLUGGED, "none"), c.status(codes.ST_CHARGING, None),
      c.status(codes.ST_ERROR, "rcd_trip"), c.status(codes.ST_ERROR, "contactor_welded"),
      c.status(codes.ST_ERROR, "cp_state_f")]
c.operative = False
st.append(c.status(codes.ST_WAITING, "none"))
print(json.dumps([t, bad, st]))
""")
    t, bad, st = r
    assert t == [calendar.timegm((2026, 11, 26, 13, 32, 33)), calendar.timegm((2026, 11, 26, 13, 32, 33)),
                 calendar.timegm((2026, 11, 26, 13, 32, 33)), calendar.timegm((2000, 2, 29, 0, 0, 0)),
                 calendar.timegm((2000, 1, 1, 0, 29, 59))]
    assert bad == 4
    assert st == [["Available", "NoError"], ["Preparing", "NoError"], ["Charging", "NoError"],
                  ["Faulted", "GroundFailure"], ["Faulted", "PowerSwitchFailure"],
                  ["Faulted", "EVCommunicationError"], ["Unavailable", "NoError"]]


def test_connect_code_is_released_after_each_connect(tmp_path):
    """ocpp/dial.py (with url.py) runs once per connect and is dropped afterwards: after a connect it is in
    neither sys.modules nor the package, and the next connect loads it again and connects."""
    from firmware_proc import free_port
    port = free_port()
    r = mp("""
import asyncio, binascii, hashlib
from loadpilot.config.store import Store
from loadpilot.log import Log
from loadpilot.site import Site
from loadpilot.ocpp.service import OcppService

async def backend(reader, writer):  # answers the upgrade, then holds the connection
    head = b""
    while not head.endswith(b"\\r\\n\\r\\n"):
        head += await reader.read(1)
    key = [l.split(b":", 1)[1].strip() for l in head.split(b"\\r\\n") if l.lower().startswith(b"sec-websocket-key")][0]
    acc = binascii.b2a_base64(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())[:-1]
    writer.write(b"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
                 b"Sec-WebSocket-Accept: " + acc + b"\\r\\nSec-WebSocket-Protocol: ocpp1.6\\r\\n\\r\\n")
    await writer.drain()
    await asyncio.sleep(5)

class Hal:
    def reset(self):
        pass

def loaded():
    pkg = sys.modules["loadpilot.ocpp"]
    return [n for n in ("dial", "url", "tls") if "loadpilot.ocpp." + n in sys.modules or hasattr(pkg, n)]

async def main():
    srv = await asyncio.start_server(backend, "127.0.0.1", %d)
    log = Log()
    store = Store(%r, log)
    store.set("ocpp_url", "ws://127.0.0.1:%d/ocpp")
    svc = OcppService(store, Site(), log, Hal(), None, "T1", "0")
    out = []
    for i in range(2):
        await svc._connect()
        out.append([svc.state, svc.tls_mode, loaded()])
        svc._close()
    srv.close()
    print(json.dumps([out, svc.connects]))

asyncio.run(main())
""" % (port, str(tmp_path), port))
    out, connects = r
    assert out == [["connected", "none", []], ["connected", "none", []]] and connects == 2


def test_statuses_of_a_transaction():
    st = mp("""
from loadpilot.ocpp import core
from loadpilot import codes
c = core.Core(lambda k: 0)
B, C, A = codes.ST_PLUGGED, codes.ST_CHARGING, codes.ST_WAITING
out = [c.status(s, "none", ph, ma) for s, ph, ma in (
    (B, 0, 0), (B, 0, 16000), (B, 1, 16000), (B, 1, 0), (C, 1, 16000), (C, 1, 0), (C, 0, 16000), (B, 2, 16000),
    (C, 2, 0), (A, 2, 0), (B, 1, None))]
out.append(c.status(C, "rcd_trip", 1, 0))
print(json.dumps(out))
""")
    assert [s[0] for s in st] == ["Preparing", "Preparing", "SuspendedEV", "SuspendedEVSE", "Charging",
                                  "SuspendedEVSE", "Charging", "Finishing", "Finishing", "Available", "SuspendedEV",
                                  "Faulted"]


def test_clock_aligned_boundaries():
    r = mp("""
from loadpilot.ocpp.aligned import next_boundary_ms
day = 20000 * 86400000  # a midnight, UTC
print(json.dumps([next_boundary_ms(t, iv) - day for t, iv in (
    (day, 900), (day + 1, 900), (day + 899999, 900), (day + 900000, 900), (day + 84000000, 7000),
    (day + 83999999, 7000), (day + 86399999, 1), (day + 86399999, 86400), (day + 43200000, 3600))]))
""")
    assert r == [900000, 900000, 900000, 1800000, 86400000, 84000000, 86400000, 86400000, 46800000]
