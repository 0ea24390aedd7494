# The device layer as a service: builds it from the configuration's device list, runs its bus tasks under the
# supervisor, and applies a changed list without a reboot. The Site and whoever follows the list are told
# through two callbacks: prepare() before the new layer is built (the Site's devices, the manager's
# chargepoints), applied() after (MQTT subscriptions, the SunSpec images).
import asyncio

SETTLE_MS = 500  # quick successive device-list changes are applied as one rebuild


class DeviceService:
    def __init__(self, store, site, setpoints, hal, log, supervisor, prepare=None, applied=None, tcp_own=None):
        self.store = store
        self.site = site
        self.setpoints = setpoints
        self.hal = hal
        self.log = log
        self.supervisor = supervisor
        self.prepare = prepare or (lambda: None)
        self.applied = applied or (lambda: None)
        self.tcp_own = tcp_own or (lambda: None)  # Modbus TCP hosts that keep a connection (the socket budget)
        self.layer = None  # the current devices.layer.DeviceLayer
        self._tasks = []
        self.changed = asyncio.Event()  # the device list changed: rebuild once it has settled
        store.subscribe(self._config_changed)

    def _config_changed(self, key):
        if key == "devices":
            self.changed.set()  # a listener only signals: run() applies it

    def _slave_ports(self):
        """COM ports this box serves as a slave (one bus has one master): devices there are skipped."""
        s = self.store
        return [s.get(k).split(",")[0].strip().upper() for k in ("modbus_rtu_port", "slave_rtu_port") if s.get(k)]

    def start(self):
        """External wallboxes and meters (docs/devices.md); set-points come from the manager via setpoints."""
        from loadpilot.devices import layer
        self.layer = layer.build(self.store.get("devices"), self.site, self.setpoints, self.hal, self.log,
                                 self._slave_ports(), self.tcp_own())
        self.layer.push_default_s = self.store.get("http_input_timeout_s")
        self._tasks = [self.supervisor.spawn(name, fn, critical=False) for name, fn in self.layer.tasks()]

    async def run(self):
        while True:
            await self.changed.wait()
            while self.changed.is_set():  # settle: wait until the list stays as it is for SETTLE_MS
                self.changed.clear()
                await asyncio.sleep_ms(SETTLE_MS)
            try:
                await self.rebuild()
            except Exception:
                self.changed.set()  # try again after the supervisor's backoff
                raise

    async def rebuild(self):
        """The Site first, then a new device layer in place of the old one (its tasks stopped and unwound, its
        transports closed), then the followers."""
        self.prepare()
        for info in self._tasks:
            task = self.supervisor.stop_task(info)
            try:
                await task  # it unwinds (releasing its bus lock) before its UART closes under it
            except BaseException:  # its CancelledError, or what it raised while unwinding
                pass
        old = self.layer
        self.layer = None
        if old is not None:
            await old.close()
        self.start()
        self.applied()
        self.log.info("devices", "device list applied: %d polled, %d skipped"
                      % (len(self.layer.entries), len(self.layer.skipped)))
