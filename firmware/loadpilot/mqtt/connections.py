# Connection sharing: features that name the same broker (same URL after parsing, `mqtt` = the configured
# default) share one Client, so the device holds one socket (and one TLS session) per broker.
from loadpilot.mqtt import url as url_mod
from loadpilot.mqtt.client import Client


class Connections:
    def __init__(self, default_url=None, **client_args):
        """default_url: what the bare word `mqtt` means. client_args go to every Client created."""
        self.default_url = default_url
        self.client_args = client_args
        self._clients = {}  # BrokerUrl.key() -> Client

    def get(self, text):
        """The shared Client for a broker URL; created on first use. ValueError for a bad URL."""
        u = url_mod.parse(text, self.default_url)
        k = u.key()
        c = self._clients.get(k)
        if c is None:
            c = Client(u, **self.client_args)
            self._clients[k] = c
        return c

    def clients(self):
        """Every client created so far; the app runs one task (client.run) per client."""
        return list(self._clients.values())

    def view(self):
        return [c.view() for c in self._clients.values()]
