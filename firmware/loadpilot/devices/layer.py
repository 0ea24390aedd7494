# The device layer built from the configuration's device list: one transport per RS485 bus / TCP host:port
# (shared by the devices behind it), one Bus task each, and a watch on pushed devices (http_input /
# mqtt_input) that marks them com_err after push_timeout seconds without data.
# Local devices (address evse / meter1 / meter2) and disabled devices are skipped.
import asyncio
import time

from loadpilot.redact import redact

RTU_TIMEOUT_MS = 300      # a silent RTU slave costs this much per retry
TCP_TIMEOUT_MS = 1000
TCP_PERIOD_MS = 1000      # network devices: one cycle a second
RTU_PERIOD_MS = 0         # a bus runs back to back: the slower the bus, the longer the cycle


class _Pushed:
    is_evse = False

    def lost(self):
        pass

    def info(self):
        return {}


class DeviceLayer:
    def __init__(self, devices, site, setpoints=None, open_rtu=None, open_tcp=None, log=None, clock=None,
                 slave_ports=(), tcp_own=None):
        """devices: the configuration's device list; open_rtu(SerialSettings) -> an RtuDevice-like client for
        that bus, open_tcp(host, port) -> a ModbusTcpClient-like client (factories so tests can fake them).
        slave_ports: COM ports this box serves as a slave (one bus has one master): devices there are skipped.
        tcp_own: how many TCP host:ports keep their connection (None: all); the rest connect per poll, one at a
        time through one shared socket (the board's socket budget, config/schema.py socket_plan)."""
        self.site = site
        self.setpoints = setpoints if setpoints is not None else {}
        self.log = log
        self.clock = clock or time.ticks_ms
        self.started_ms = self.clock()
        self.entries = []
        self.buses = []
        self.pushed = []
        self.skipped = []  # (dev_id, why)
        self.push_default_s = 60  # a pushed device's timeout when its push_timeout is 0 (http_input_timeout_s)
        self._open_rtu = open_rtu
        self.slave_ports = slave_ports
        self.extra = {}  # bus key -> a client opened for the TCP-to-RTU proxy on a bus no device is polled on
        groups = {}
        order = []
        if devices:  # addresses, drivers and bus tasks are imported when there is a device (off costs nothing)
            from loadpilot.devices import address as address_mod, registry
            from loadpilot.devices.bus import Bus, Entry
        for dev in devices:
            if not dev.get("device_enabled", True):
                continue
            dev_id = dev["dev_id"]
            try:
                if site.device(dev_id) is None:
                    raise ValueError("not in the site's device list")
                where = address_mod.parse(dev.get("address", ""))
                if where[0] == "local":
                    continue
                if where[0] == "push":
                    if dev["driver"] not in registry.PUSHED:
                        raise ValueError("driver %s needs an address" % dev["driver"])
                    e = Entry(dev, _Pushed(), site.device(dev_id))
                    self.pushed.append(e)
                    self.entries.append(e)
                    continue
                if where[0] == "rtu" and where[1].port in slave_ports:
                    raise ValueError("%s is this box's slave port; a bus has one master" % where[1].port)
                key = address_mod.bus_key(where)
                g = groups.get(key)
                if g is None:
                    client = open_rtu(where[1]) if where[0] == "rtu" else open_tcp(where[1], where[2])
                    g = groups[key] = (where[0], client, [])
                    order.append(key)
                e = Entry(dev, registry.make(dev, g[1]), site.device(dev_id))
                g[2].append(e)
                self.entries.append(e)
            except (ValueError, OSError) as ex:
                self.skipped.append((dev_id, str(ex)))
                if log is not None:
                    log.error("devices", "%s not polled: %s" % (dev_id, ex))
        pool = None
        n_tcp = 0
        for key in order:
            kind, client, entries = groups[key]
            period = TCP_PERIOD_MS if kind == "tcp" else RTU_PERIOD_MS
            bus = Bus(key, entries, site, self.setpoints, self.clock, period)
            bus.client = client
            if kind == "tcp":
                n_tcp += 1
                if tcp_own is not None and n_tcp > tcp_own:
                    if pool is None:
                        pool = asyncio.Lock()
                    bus.pool = pool
            self.buses.append(bus)

    def rtu_master(self, st):
        """The RtuMaster (bus lock and all) of RS485 bus st.port, for the TCP-to-RTU proxy: the one this layer's
        devices there are polled through, or else one opened now on settings st and closed with the layer.
        Raises ValueError / OSError when the bus cannot be had."""
        key = "rtu:" + st.port
        for b in self.buses:
            if b.name == key:
                return b.client.master
        client = self.extra.get(key)
        if client is None:
            if st.port in self.slave_ports:
                raise ValueError("%s is this box's slave port; a bus has one master" % st.port)
            client = self.extra[key] = self._open_rtu(st)
        return client.master

    async def close(self):
        """Release every transport (UARTs, TCP sockets) after the bus tasks were stopped: a new layer for a
        changed device list opens them again. A proxied request still on a bus finishes first (bus lock)."""
        for name, client in [(b.name, b.client) for b in self.buses] + list(self.extra.items()):
            if client is not None and hasattr(client, "close"):
                try:
                    lock = getattr(getattr(client, "master", None), "lock", None)
                    if lock is not None:
                        async with lock:
                            await client.close()
                    else:
                        await client.close()
                except Exception as e:  # a transport that will not close must not stop the rebuild
                    if self.log is not None:
                        self.log.warn("devices", "closing %s: %s" % (name, e))
        self.extra = {}

    def tasks(self):
        """(name, coroutine function) pairs for the supervisor."""
        out = [("dev_" + b.name.replace(":", "_"), b.run) for b in self.buses]
        if self.pushed:
            out.append(("dev_push_watch", self.watch_pushed))
        return out

    def check_pushed(self, now_ms):
        for e in self.pushed:
            st = e.state
            timeout_ms = (e.dev.get("push_timeout") or self.push_default_s) * 1000
            seen = st.reading.updated_ms if st is not None else None
            since = self.started_ms if seen is None else seen
            if time.ticks_diff(now_ms, since) > timeout_ms:
                if not e.com_err:
                    e.failed("no data for %d s" % (timeout_ms // 1000), now_ms, 0)
            elif seen is not None:
                e.ok(seen)

    async def watch_pushed(self):
        while True:
            self.check_pushed(self.clock())
            await asyncio.sleep_ms(1000)

    def view(self, now_ms=None):
        """get_dev_info-like dicts, one per polled or pushed device."""
        now = self.clock() if now_ms is None else now_ms
        out = []
        for e in self.entries:
            d = e.dev
            since = e.last_error_ms if e.last_error_ms is not None else self.started_ms
            v = {"dev_id": e.dev_id, "dev_type": d["driver"], "name": d.get("name", ""),
                 "address": redact(d.get("address", "")), "id": d.get("id", 1), "device_enabled": True,
                 "is_evse": e.dev_id[0] == "E", "com_err": e.com_err,
                 "com_err_secs": time.ticks_diff(now, since) // 1000, "com_errors": e.com_errors,
                 "last_error": e.last_error}
            if e.state is not None:
                v.update(e.state.view())
            v.update(e.driver.info())
            out.append(v)
        return out

    def bus_view(self):
        return [b.view() for b in self.buses]


def build(devices, site, setpoints, hal, log=None, slave_ports=(), tcp_own=None):
    """The layer on real transports: RtuMaster per COM port on the board UART it names, ModbusTcpClient per
    host:port."""
    # the Modbus clients are imported when a device needs one: a feature that is off costs no heap
    def open_rtu(st):
        from loadpilot.modbus.rtu_master import RtuDevice, RtuMaster
        uart = hal.uart(st.board_uart(), *st.uart_args())
        master = RtuMaster(uart, st, timeout_ms=RTU_TIMEOUT_MS)
        return RtuDevice(master, 1)  # one client per bus: drivers pass their unit with every request

    def open_tcp(host, port):
        from loadpilot.modbus.tcp_client import ModbusTcpClient
        return ModbusTcpClient(host, port, timeout_ms=TCP_TIMEOUT_MS)

    return DeviceLayer(devices, site, setpoints, open_rtu, open_tcp, log, slave_ports=slave_ports, tcp_own=tcp_own)
