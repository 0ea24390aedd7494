# The TCP-to-RTU proxy as the app runs it (setting modbus_proxy, docs/modbus.md). Imported only when the
# setting is not empty.
#
# - The SunSpec server's TCP port serves the proxied units through `router`: the SunSpec router with the
#   proxied units in front. The RTU slave on modbus_rtu_port keeps the plain router, so nothing is proxied
#   from RS485 to RS485.
# - A proxied request goes out through the RtuMaster of the current device layer (layer.rtu_master): the same
#   master, so the same bus lock, as the devices polled on that bus; on a bus no device is polled on, the
#   layer opens a master for the proxy and closes it with itself. So one UART has one owner, the layer.
# - The app replaces the layer when the device list changes and sets app.devices to None while the old one
#   closes. Each request first compares the app's layer with the one it is bound to and rebinds when they
#   differ (no hook in the rebuild): while there is no layer, requests get exception 0A; a closed layer's
#   UART is never used for a new request (a request already on the bus holds its lock, and the layer waits
#   for that lock before it closes the UART).
# - A silent slave gives exception 0B after the master's timeout (layer.RTU_TIMEOUT_MS, no retries); the TCP
#   server echoes the transaction id of every answer.
from loadpilot.config import schema
from loadpilot.modbus import serial_settings
from loadpilot.modbus.proxy import ProxiedUnit

DEFAULT_COM = ",9600,8,n,1"  # settings of a proxied bus that names only its port and polls no device


class ProxyRouter:
    """A Router for the TCP server: proxied units first, every other unit from base (the SunSpec router)."""

    def __init__(self, base, units):
        self.base = base
        self.proxied = units

    def get(self, unit_id):
        h = self.proxied.get(unit_id)
        return h if h is not None else self.base.get(unit_id)

    def units(self):
        return sorted(set(self.base.units()) | set(self.proxied))


class ProxyService:
    def __init__(self, config, base_router, layer_of, log, ports=None):
        """config: the store (modbus_proxy and the settings it must not collide with); layer_of() -> the app's
        current device layer or None; ports: the board's COM ports (schema.com_ports)."""
        self.log = log
        self._layer_of = layer_of
        self._layer = None
        self.units = {}  # TCP unit id -> ProxiedUnit (same id on the RTU side)
        self.buses = {}  # port -> [SerialSettings, [handlers], error or None]
        resolve = self.resolve  # one bound method for all handlers
        for ranges, port, com in schema.parse_proxy(config.get("modbus_proxy")):
            st = serial_settings.parse(com or port + DEFAULT_COM)
            for lo, hi in ranges:
                why = schema.proxy_conflict(lo, hi, port, config.get, ports)
                if why is not None:  # a stored setting that a later change made wrong: skip it, loudly
                    log.error("proxy", "units %d-%d@%s not proxied: %s" % (lo, hi, port, why))
                    continue
                bus = self.buses.get(port)
                if bus is None:
                    bus = self.buses[port] = [st, [], None]
                for u in range(lo, hi + 1):
                    h = ProxiedUnit(None, u, None, resolve)
                    self.units[u] = h
                    bus[1].append(h)
        self.router = ProxyRouter(base_router, self.units)

    def resolve(self, handler):
        layer = self._layer_of()
        if layer is not self._layer:
            self._bind(layer)
        return handler.master

    def _bind(self, layer):
        self._layer = layer
        for port in self.buses:
            bus = self.buses[port]
            master = None
            if layer is not None:
                try:
                    master = layer.rtu_master(bus[0])
                    bus[2] = None
                except (ValueError, OSError) as e:
                    bus[2] = str(e)
                    self.log.error("proxy", "%s: %s" % (port, e))
            for h in bus[1]:
                h.master = master

    def view(self):
        out = []
        for port in self.buses:
            st, handlers, error = self.buses[port]
            out.append({"port": port, "settings": st.text(), "units": [h.rtu_unit for h in handlers],
                        "forwarded": sum(h.forwarded for h in handlers), "failed": sum(h.failed for h in handlers),
                        "error": error})
        return out
