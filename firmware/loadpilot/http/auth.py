# HTTP Basic login for /cnf: the operator user (seed 004: "operator") or "admin" (reference/http-api.md's curl
# example, reference/system-configuration.md: "the user name is always admin"), with the admin password from
# the configuration (admin_pwd; factory default from seed 004, config/schema.py). A wrong password answers 401
# after a delay that doubles with each failure from that client's address, up to MAX_DELAY_MS; the wait is an
# await, so other clients are served meanwhile. A right password clears the client's count. While a client's
# delay runs, its further tries are not checked at all (429, `waiting`): parallel connections guess no faster.
import binascii
import time
from micropython import const

from loadpilot.config.schema import FACTORY_ADMIN_PWD as FACTORY_PASSWORD

USERS = ("operator", "admin")
FIRST_DELAY_MS = const(500)
MAX_DELAY_MS = const(16000)
_CLIENTS = const(16)  # addresses remembered; the oldest goes first (a flood of addresses cannot grow this)
REALM = 'WWW-Authenticate: Basic realm="LoadPilot"\r\n'


class Login:
    def __init__(self, store):
        self.store = store
        self._failures = []  # [peer, count, last_ms], oldest first
        self._for = None     # the password self._tokens were made for
        self._tokens = ()

    def password(self):
        return self.store.peek("admin_pwd")  # the plain stored value: no copy, no wrapper per request

    def is_factory(self):
        """The password was never changed (or was set back to the factory one): every answer warns."""
        p = self.password()
        return p == FACTORY_PASSWORD or p == ""

    def check(self, authorization):
        """True for a Basic header with a known user and the admin password. An empty stored password (a
        configuration from before the factory default) accepts the factory password, never an empty one.
        The headers that log in are computed once per password, so a request allocates nothing here."""
        if not authorization:
            return False
        pwd = self.password() or FACTORY_PASSWORD
        if pwd is not self._for:
            self._for = pwd
            self._tokens = tuple("Basic " + binascii.b2a_base64(("%s:%s" % (u, pwd)).encode())[:-1].decode()
                                 for u in USERS)
        ok = False
        for t in self._tokens:
            ok = _same(authorization, t) or ok  # every token compared: the time does not tell the user
        return ok

    def _entry(self, peer):
        for e in self._failures:
            if e[0] == peer:
                return e
        return None

    def failed(self, peer):
        """Count a failure -> the delay (ms) before this client's 401."""
        e = self._entry(peer)
        if e is None:
            if len(self._failures) >= _CLIENTS:
                self._failures.pop(0)
            e = [peer, 0, 0]
            self._failures.append(e)
        e[1] += 1
        e[2] = time.ticks_ms()
        return _delay(e[1])

    def waiting(self, peer):
        """ms left of this client's delay after its last failure (0: it may try again)."""
        e = self._entry(peer)
        if e is None:
            return 0
        left = _delay(e[1]) - time.ticks_diff(time.ticks_ms(), e[2])
        return left if left > 0 else 0

    def succeeded(self, peer):
        e = self._entry(peer)
        if e is not None:
            self._failures.remove(e)

    def failures(self, peer):
        e = self._entry(peer)
        return e[1] if e is not None else 0


def _delay(failures):
    d = FIRST_DELAY_MS << (failures - 1 if failures < 8 else 7)
    return d if d < MAX_DELAY_MS else MAX_DELAY_MS


def _same(a, b):
    """a == b for str, without stopping at the first differing character (no timing hint of how much was
    right) and without allocating."""
    diff = len(a) ^ len(b)
    n = len(b)
    for i in range(len(a)):
        diff |= ord(a[i]) ^ ord(b[i % n])
    return diff == 0
