# The OCPP client's connect sequence: the URL (url.py), the host's address (dns.py, never blocking), TCP
# (tcp.py), TLS for wss:// (tls.py), then the WebSocket upgrade with HTTP Basic auth (RFC 6455 4.1). It runs
# once per connect, so the service imports it for a connect and releases it afterwards with url.py and tls.py
# (service._release): between connects none of their function objects take heap (docs/ocpp.md, "Memory").
import asyncio
import binascii
import hashlib

from loadpilot import dns, tcp
from loadpilot.ocpp import url as url_mod
from loadpilot.ocpp.ws import WsError, random_into

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
NO_TLS = "none"  # tls.NONE, without importing tls.py for a ws:// backend


async def connect(svc, timeout_ms):
    """Open svc's link to the backend: svc._sock and svc.tls_mode set, svc._ws open; -> the host. Raises
    WsError (the text says which step failed), OSError or ValueError."""
    cfg = svc.config
    cid = svc.client_id()
    is_tls, host, port, path = url_mod.parse(cfg.get("ocpp_url"), cid)
    server = svc.hal.dns_server() if hasattr(svc.hal, "dns_server") else None
    family, addr = await dns.resolve(host, port, server)  # every reconnect: backends move
    try:
        s = svc._sock = await tcp.connect(family, addr, timeout_ms)
    except asyncio.TimeoutError:
        raise WsError("TCP connect timed out")
    if is_tls:
        from loadpilot.ocpp import tls  # a ws:// backend never loads it
        ca, cert, key = (cfg.secret("ocpp_tls_ca"), cfg.secret("ocpp_tls_cert"), cfg.secret("ocpp_tls_key"))
        s = svc._sock = tls.wrap(s, host, ca, cert, key)
        svc.tls_mode = tls.mode(ca, cert, key)
    else:
        svc.tls_mode = NO_TLS
    pwd = cfg.secret("ocpp_password")
    key = bytearray(16)
    random_into(key, 0, 16)
    key = binascii.b2a_base64(key)[:-1]
    req = upgrade_request(host, port, is_tls, path, key, url_mod.basic_auth(cid, pwd) if pwd else None)
    del pwd
    try:
        head = await svc._ws.open(asyncio.StreamWriter(s), req, timeout_ms)
    except ValueError as e:  # MicroPython's TLS layer reports certificate failures as ValueError
        raise WsError("TLS: %s" % (str(e).strip() or "handshake failed"))
    except asyncio.TimeoutError:
        raise WsError("no WebSocket answer within %d ms" % timeout_ms)
    check_answer(head, key)
    return host


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (both base64 text without newline)."""
    return binascii.b2a_base64(hashlib.sha1(key + _GUID).digest())[:-1]


def upgrade_request(host, port, tls, path, key, auth=None, protocol=b"ocpp1.6"):
    """The HTTP/1.1 upgrade request (bytes). auth: the Authorization header value, or None."""
    default = 443 if tls else 80
    h = host if port == default else "%s:%d" % (host, port)
    lines = [b"GET ", path.encode(), b" HTTP/1.1\r\nHost: ", h.encode(),
             b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ", key,
             b"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ", protocol, b"\r\n"]
    if auth:
        lines += [b"Authorization: ", auth, b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines)


def check_answer(head, key, protocol=b"ocpp1.6"):
    """Check the server's answer to the upgrade (bytes up to the blank line); raise WsError."""
    line_end = head.find(b"\r\n")
    first = head[:line_end].split()
    if len(first) < 2 or not first[0].startswith(b"HTTP/1.") or not first[1].isdigit():
        raise WsError("not an HTTP answer")
    status = int(first[1])
    if status != 101:
        raise WsError("HTTP %d instead of 101 Switching Protocols" % status)
    got_accept = got_protocol = None
    for line in head[line_end + 2:].split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        value = value.strip()
        if name == b"sec-websocket-accept":
            got_accept = value
        elif name == b"sec-websocket-protocol":
            got_protocol = value
    if got_accept != accept_key(key):
        raise WsError("wrong Sec-WebSocket-Accept")
    if got_protocol != protocol:  # OCPP-J 3.1.2: a server that does not confirm ocpp1.6 is not an OCPP 1.6 server
        raise WsError("server did not accept subprotocol %s" % protocol.decode())
