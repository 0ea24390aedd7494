# Keeps the SunSpec images in step with the configuration, the volatile values and the Site (readings, states
# and the manager's totals), and turns Modbus writes into commands. Register reads never come here: the
# servers read the images directly.
import asyncio

from loadpilot import VERSION
from loadpilot.api.commands import CommandError
from loadpilot.codes import ST_ERROR, ST_OFFLINE
from loadpilot.modbus.image import WRITE_APPLIED
from loadpilot.modbus.pdu import ILLEGAL_ADDRESS, ILLEGAL_VALUE
from loadpilot.registers import sunspec

REFRESH_MS = 1000
_REBUILD_KEYS = ("modbus_id", "cm_vars", "title")  # settings that reshape the images (the device list: changed)


class SunSpecService:
    def __init__(self, store, commands, site, log, serial=""):
        self.store = store
        self.commands = commands
        self.site = site
        self.log = log
        self.serial = serial
        self.cm = None
        self.dev = None
        self.modbus_id = None
        self._site_version = -1
        self.changed = asyncio.Event()  # set: rebuild the images (the app sets it once a new device list applies)
        self.build()
        store.subscribe(self._config_changed)

    def _config_changed(self, key):
        if key in _REBUILD_KEYS:
            self.changed.set()

    async def run(self, router):
        """Refresh once a second; rebuild (detach, build, attach) when the configuration reshaped the images."""
        while True:
            if self.changed.is_set():
                self.changed.clear()
                self.detach(router)
                self.build()
                self.attach(router)
                self.log.info("sunspec", "images rebuilt for the new configuration")
            self.refresh()
            try:
                await asyncio.wait_for_ms(self.changed.wait(), REFRESH_MS)
            except asyncio.TimeoutError:
                pass

    def published_devices(self):
        return [d for d in self.store.get("devices") if d.get("publish_modbus")]

    def build(self):
        """(Re)build both images from the configuration: at boot and when devices or the Modbus ID change."""
        self.modbus_id = self.store.get("modbus_id")
        ident = {"version": VERSION, "serial": self.serial, "model": self.store.get("title") or "LoadPilot"}
        self.cm = sunspec.ChargingManagerMap(ident, self.modbus_id, self.commands.var_names())
        self.cm.image.on_write = self._on_cm_write
        self.dev = sunspec.DeviceMap(self.published_devices())
        self.dev.image.on_write = lambda addr, count, data, off: ILLEGAL_ADDRESS  # ID+1 is read-only
        self._site_version = -1
        self.refresh()

    def attach(self, router):
        router.add(self.modbus_id, self.cm.image)
        router.add(self.modbus_id + 1, self.dev.image)

    def detach(self, router):
        router.remove(self.modbus_id)
        router.remove(self.modbus_id + 1)

    def refresh(self):
        """Copy parameters, flags, variables and readings into the images. Called once a second and after
        each accepted write; not on the read path."""
        params = {}
        for _, key, _ in sunspec.PARAMS_60000:
            if key == "max_total_cur_prc":
                params[key] = self.store.volatile.get(key)
            else:
                params[key] = self.store.get(key)
        self.cm.set_params(params)
        for i in range(sunspec.N_FLAGS):
            self.cm.set_flag(i, self.store.volatile.get("cm_flag%d" % (i + 1)))
        for i, name in enumerate(self.cm.var_names):
            self.cm.set_var(i, self.store.volatile.get("cm_var." + name))
        if self.site.version != self._site_version:
            self._site_version = self.site.version
            for i, r in enumerate(self.site.totals):
                self.cm.set_total(i, r if r.updated_ms is not None else None)
            for dev_id, kind, _ in self.dev.entries:
                d = self.site.device(dev_id)
                if d is None or d.reading.updated_ms is None:
                    continue
                if kind == "evse":
                    self.dev.set_evse(dev_id, d.reading, ST_ERROR if d.status == ST_OFFLINE else d.status)
                elif kind == "meter":  # a silent meter is unknown (NaN, as the totals drop it), not its last figures
                    self.dev.set_meter(dev_id, None if d.com_err else d.reading)
                else:
                    self.dev.set_storage(dev_id, None, None, None, d.soc_pct)

    def _on_cm_write(self, addr, count, data, off):
        values = [(data[off + 2 * i] << 8) | data[off + 2 * i + 1] for i in range(count)]
        code, cmds = self.cm.decode_write(addr, values)
        if code:
            return code
        params = {}
        try:
            for kind, key, v in cmds:
                if kind == "param":
                    params[key] = v
            if params:
                self.commands.set_params(params)  # validates ranges against the schema; all or nothing
            for kind, key, v in cmds:
                if kind == "flag":
                    self.commands.set_flag(key, v)
                elif kind == "var":
                    self.commands.set_cm_var(key, v)
        except CommandError as e:
            self.log.warn("sunspec", "write at %d refused: %s" % (addr, e))
            return ILLEGAL_VALUE
        self.refresh()
        return WRITE_APPLIED
