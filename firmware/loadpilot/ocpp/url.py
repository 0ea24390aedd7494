# OCPP backend URLs: ws[s]://host[:port][/path]. The Client ID is the last path segment (OCPP-J 3.1.1); it is
# appended unless the URL already ends with it (seed: some backends put the ID into the URL themselves).
import binascii


def parse(url, client_id):
    """-> (tls, host, port, path). Raises ValueError with a message that never holds a password (the URL has
    none: the password is its own setting)."""
    u = url.strip()
    if u.startswith("wss://"):
        tls, rest, port = True, u[6:], 443
    elif u.startswith("ws://"):
        tls, rest, port = False, u[5:], 80
    else:
        raise ValueError("an OCPP URL starts with ws:// or wss://")
    slash = rest.find("/")
    hostport, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in hostport:
        raise ValueError("put the password into ocpp_password, not into the URL")
    if hostport.startswith("["):  # IPv6 literal
        end = hostport.find("]")
        if end < 0:
            raise ValueError("unclosed [ in the host")
        host, tail = hostport[1:end], hostport[end + 1:]
    else:
        host, _, p = hostport.partition(":")
        tail = ":" + p if _ else ""
    if tail:
        if tail[0] != ":" or not tail[1:].isdigit() or not 0 < int(tail[1:]) < 65536:
            raise ValueError("bad port in the OCPP URL")
        port = int(tail[1:])
    if not host:
        raise ValueError("no host in the OCPP URL")
    if "?" in path or "#" in path:
        raise ValueError("an OCPP URL has no query or fragment")
    if client_id:
        last = path.rstrip("/").rsplit("/", 1)[-1]
        if last != client_id:
            path = path.rstrip("/") + "/" + client_id
    return tls, host, port, path


def basic_auth(user, password):
    """The Authorization header value for HTTP Basic (OCPP security profile 1: user = the Client ID)."""
    return b"Basic " + binascii.b2a_base64(("%s:%s" % (user, password)).encode())[:-1]
