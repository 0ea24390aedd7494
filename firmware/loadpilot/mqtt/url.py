# MQTT broker URLs: mqtt[s][3|5]://[user[:password]@]host[:port][/], a bare host (= mqtt://host), or the bare
# word `mqtt` for the default broker from the configuration. The password never appears in repr/str.

# scheme, TLS, MQTT version: a constant table (a dict would be built in RAM at import)
SCHEMES = (("mqtt", False, 4), ("mqtt3", False, 4), ("mqtt5", False, 5),
           ("mqtts", True, 4), ("mqtts3", True, 4), ("mqtts5", True, 5))


def _scheme(name):
    """-> (tls, version) of a scheme name, or None."""
    for r in SCHEMES:
        if r[0] == name:
            return r[1], r[2]
    return None
DEFAULT_WORD = "mqtt"
PORT_PLAIN = 1883
PORT_TLS = 8883
_HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"
_HEX = "0123456789abcdefABCDEF"


def _unquote(s, what):
    # percent-decoding so a password may hold '@', ':' or '/'
    if "%" not in s:
        return s
    out = bytearray()
    i = 0
    b = s.encode()
    while i < len(b):
        c = b[i]
        if c == 37:  # '%'
            h = s[i + 1:i + 3]
            if len(h) != 2 or h[0] not in _HEX or h[1] not in _HEX:
                raise ValueError("bad %%-escape in %s" % what)
            out.append(int(h, 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return out.decode()


class BrokerUrl:
    """A parsed broker URL. version is 4 (MQTT 3.1.1) or 5 as asked for by the scheme."""

    def __init__(self, scheme, host, port, user=None, password=None):
        self.scheme = scheme
        self.tls, self.version = _scheme(scheme)
        self.host = host
        self.port = port
        self.user = user
        self.password = password

    def key(self):
        # identity for connection sharing: the same broker with the same credentials shares one client
        return (self.tls, self.version, self.host.lower(), self.port, self.user, self.password)

    def redacted(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        if self.user is None:
            auth = ""
        elif self.password is None:
            auth = self.user + "@"
        else:
            auth = self.user + ":***@"
        return "%s://%s%s:%d" % (self.scheme, auth, h, self.port)

    def __repr__(self):
        return "<BrokerUrl %s>" % self.redacted()

    def __str__(self):
        return self.redacted()

    def __eq__(self, other):
        return isinstance(other, BrokerUrl) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())


def parse(text, default=None):
    """Parse a broker URL. `mqtt` alone resolves to default (a URL string or BrokerUrl). Raises ValueError
    with a message that never contains the password."""
    if isinstance(text, BrokerUrl):
        return text
    if not isinstance(text, str):
        raise ValueError("broker URL must be a string")
    s = text.strip()
    if not s:
        raise ValueError("empty broker URL")
    if s.lower() == DEFAULT_WORD:
        if default is None or default == "" or (isinstance(default, str) and default.strip().lower() == DEFAULT_WORD):
            raise ValueError("'mqtt' names the default broker, but no default broker is configured")
        return parse(default)
    i = s.find("://")
    if i >= 0:
        scheme = s[:i].lower()
        if _scheme(scheme) is None:
            raise ValueError("unknown broker URL scheme '%s' (use mqtt, mqtts, mqtt3, mqtt5, mqtts3, mqtts5)"
                             % scheme[:16])
        rest = s[i + 3:]
    else:
        scheme = "mqtt"
        rest = s
    if rest.endswith("/"):
        rest = rest[:-1]
    user = password = None
    at = rest.rfind("@")
    if at >= 0:
        auth = rest[:at]
        rest = rest[at + 1:]
        c = auth.find(":")
        if c >= 0:
            user = _unquote(auth[:c], "user name")
            password = _unquote(auth[c + 1:], "password")
        else:
            user = _unquote(auth, "user name")
        if not user:
            raise ValueError("empty user name in broker URL")
    if "/" in rest or "?" in rest or "#" in rest:
        raise ValueError("broker URL must not have a path or query")
    port_text = None
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError("unterminated [IPv6] host in broker URL")
        host = rest[1:end]
        tail = rest[end + 1:]
        if tail:
            if not tail.startswith(":"):
                raise ValueError("junk after [IPv6] host in broker URL")
            port_text = tail[1:]
        for ch in host:
            if ch not in _HEX and ch not in ":.":
                raise ValueError("bad IPv6 address in broker URL")
        if ":" not in host:
            raise ValueError("bad IPv6 address in broker URL")
    else:
        c = rest.find(":")
        if c >= 0:
            host, port_text = rest[:c], rest[c + 1:]
        else:
            host = rest
        for ch in host:
            if ch not in _HOST_CHARS:
                raise ValueError("bad character in broker host name")
        if host.startswith("-") or host.startswith(".") or ".." in host:
            raise ValueError("bad broker host name")
    if not host:
        raise ValueError("broker URL has no host")
    tls = _scheme(scheme)[0]
    if port_text is None:
        port = PORT_TLS if tls else PORT_PLAIN
    else:
        if not port_text or not port_text.isdigit() or len(port_text) > 5:
            raise ValueError("bad port in broker URL")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError("broker port out of range 1..65535")
    return BrokerUrl(scheme, host, port, user, password)
