# The Site: the one truth every reporter reads, in integer units. For each device it holds the latest reading
# and communication state (written by the device's driver or push input: sense) and the Charging Manager's
# decision (written by the manager cycle: decide); for the whole site the seven totals (written by the manager
# cycle). Reporters (SunSpec, MQTT, the slave maps, HTTP) read it and recompute nothing.
from loadpilot.codes import TOTALS, ST_OFFLINE, ST_WAITING, plugged


class Reading:
    """One meter or wallbox reading. Currents in mA (signed: negative = export), voltages in V, power in W
    and VA, energies in Wh."""

    def __init__(self):
        self.current_ma = [0, 0, 0]
        self.voltage_v = [230, 230, 230]
        self.phase_w = None  # per-phase power if the device reports it, else derived from V x I
        self.power_w = 0
        self.power_va = 0
        self.import_wh = 0
        self.export_wh = 0
        self.own_energy = False  # the device reported import_wh: else a wallbox's is the soft meter's (soft_meter.py)
        self.updated_ms = None  # ticks_ms of the last update, None = never

    def phase_power_w(self, i):
        if self.phase_w is not None:
            return self.phase_w[i]
        return self.voltage_v[i] * self.current_ma[i] // 1000

    def update(self, current_ma=None, voltage_v=None, power_w=None, power_va=None, import_wh=None,
               export_wh=None, phase_w=None, now_ms=None):
        if current_ma is not None:
            for i in range(3):
                self.current_ma[i] = int(current_ma[i])
        if voltage_v is not None:
            for i in range(3):
                self.voltage_v[i] = int(voltage_v[i])
        if phase_w is not None:
            self.phase_w = [int(phase_w[0]), int(phase_w[1]), int(phase_w[2])]
        if power_w is not None:
            self.power_w = int(power_w)
        elif current_ma is not None:
            self.power_w = sum(self.phase_power_w(i) for i in range(3))
        self.power_va = int(power_va) if power_va is not None else abs(self.power_w)
        if import_wh is not None:
            self.import_wh = int(import_wh)
            self.own_energy = True
        if export_wh is not None:
            self.export_wh = int(export_wh)
        self.updated_ms = now_ms

    def view(self):
        return {"current_ma": list(self.current_ma), "voltage_v": list(self.voltage_v), "power_w": self.power_w,
                "import_wh": self.import_wh, "export_wh": self.export_wh}


class DeviceState:
    def __init__(self, dev_id):
        self.dev_id = dev_id
        self.is_evse = dev_id[0] == "E"
        self.reading = Reading()
        self.status = ST_OFFLINE if self.is_evse else 0
        # cars plugged in since boot (set_status): an observer that finds it changed since its last look knows a
        # new car came, even if an unplug and the next plug-in both fell between two of its looks
        self.plugins = 0
        self._car = False          # the last definite state: a car (B-D) or none (A); error/offline leave it
        self.soc_pct = None  # storage meters
        # communication (the driver or the push watch writes it)
        self.com_err = False
        self.com_errors = 0
        self.last_error = ""
        self.last_error_ms = None  # ticks_ms of the last error, None = none since boot
        self.phases = None         # phases the box switched to (1/3), where its driver can read them
        self.can_switch_phases = False
        # the Charging Manager's decision (wallboxes; the manager cycle writes it)
        self.safe_ma = 0           # what it may offer until the manager decides (manager/budget.start_limit_ma)
        self.alloc_ma = 0          # the current it may draw, 0 = off / paused
        self.enabled = False       # charging allowed
        self.want_phases = 3       # 1/3 the manager wants
        self.paused = False
        self.pause_ms = 0          # how long the running pause has lasted
        self.reason = 0            # manager.model reason code (REASON_NAMES)

    def set_status(self, status):
        """The one way a driver or a push writes a wallbox's state (codes.ST_*): counts plug-ins. A box that was
        seen empty and now reports a car is a new car; an error or offline spell in between is not an unplug."""
        if plugged(status):
            if not self._car:
                self._car = True
                self.plugins = (self.plugins + 1) & 0x3FFFFFFF  # a small int on 32 bits: compared, never summed
        elif status == ST_WAITING:
            self._car = False
        self.status = status

    def failed(self, why, now_ms):
        """A poll or push timeout failed: count it, and an unreachable wallbox reports offline."""
        self.com_errors += 1
        self.last_error = why
        self.last_error_ms = now_ms
        self.com_err = True
        if self.is_evse:
            self.set_status(ST_OFFLINE)

    def view(self):
        v = self.reading.view()
        v["dev_id"] = self.dev_id
        # as get_dev_info's com_err: a meter's last figures stay in the reading, so the dashboard must say so
        v["com_err"] = self.com_err or self.reading.updated_ms is None
        if self.is_evse:
            v["state"] = self.status
        return v


class Site:
    """The latest readings of every configured device plus the Charging Manager's seven totals."""

    def __init__(self):
        self.devices = {}
        self.totals = [Reading() for _ in TOTALS]  # updated_ms None: the figure cannot exist (SunSpec NaN)
        self.version = 0  # bumped on every update so reporters can skip unchanged cycles
        self.local_id = None  # dev_id of the board's own charge point (codes.local_evse_id), or None
        self.cycle_ms = 0  # how long the manager's last cycle interval was (get_dev_info cycle_time)
        self.avail_evse_w = None  # what the wallboxes may draw in all, W (None: observation mode)
        self.min_pause_s = 0  # the manager's minimum pause before a paused box may start again

    def configure(self, dev_ids):
        keep = {}
        for d in dev_ids:
            keep[d] = self.devices.get(d) or DeviceState(d)
        self.devices = keep
        self.version += 1

    def device(self, dev_id):
        return self.devices.get(dev_id)

    def total(self, name):
        return self.totals[TOTALS.index(name)]

    def push(self, readings, now_ms):
        """Apply pushed readings ({dev_id: reading}), all checked before any is applied. A reading is a dict
        with current_ma, voltage_v, power_w, import_wh, export_wh (all optional) and, for wallboxes, status;
        storage meters may add soc_pct. The totals are the manager cycle's alone."""
        targets = []
        for key, obj in readings.items():
            d = self.devices.get(key)
            if d is None:
                raise ValueError("unknown device %r" % key)
            targets.append((d.reading, d, obj))
        for reading, dev, obj in targets:
            reading.update(obj.get("current_ma"), obj.get("voltage_v"), obj.get("power_w"), obj.get("power_va"),
                           obj.get("import_wh"), obj.get("export_wh"), obj.get("phase_w"), now_ms)
            if dev is not None:
                if "status" in obj:
                    dev.set_status(int(obj["status"]))
                if "soc_pct" in obj:
                    dev.soc_pct = int(obj["soc_pct"])
        self.version += 1
