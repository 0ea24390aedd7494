# The site snapshot: the latest readings of every device and the Charging Manager's totals, in integer units.
# Bus tasks and push inputs (HTTP/MQTT meters) write it; reporters (SunSpec, MQTT, HTTP) read it.


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
        if export_wh is not None:
            self.export_wh = int(export_wh)
        self.updated_ms = now_ms

    def view(self):
        return {"current_ma": list(self.current_ma), "voltage_v": list(self.voltage_v), "power_w": self.power_w,
                "import_wh": self.import_wh, "export_wh": self.export_wh}


TOTALS = ("grid", "consumers", "generators", "pv_surplus", "evse_used", "evse_available", "fault")

# wallbox status as reported everywhere (HTTP get_dev_info "state", SunSpec 113 +62)
ST_WAITING = 1
ST_PLUGGED = 2
ST_CHARGING = 3
ST_VENTILATION = 4
ST_ERROR = 5
ST_OFFLINE = 6


class DeviceState:
    def __init__(self, dev_id):
        self.dev_id = dev_id
        self.is_evse = dev_id[0] == "E"
        self.reading = Reading()
        self.status = ST_OFFLINE if self.is_evse else 0
        self.soc_pct = None  # storage meters
        self.phases = None  # wallboxes: phases the box reports it uses (1/3), None = it does not say
        self.can_switch_phases = False  # wallboxes: the box reports it can switch 1p/3p

    def view(self):
        v = self.reading.view()
        v["dev_id"] = self.dev_id
        if self.is_evse:
            v["state"] = self.status
        return v


class Site:
    """The latest readings of every configured device plus the Charging Manager's seven totals."""

    def __init__(self):
        self.devices = {}
        self.totals = [Reading() for _ in TOTALS]
        self.version = 0  # bumped on every update so reporters can skip unchanged cycles

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
        """Apply pushed readings ({dev_id: reading, "totals": {name: reading}}), all checked before any is
        applied. A reading is a dict with current_ma, voltage_v, power_w, import_wh, export_wh (all optional)
        and, for wallboxes, status; storage meters may add soc_pct."""
        targets = []
        for key, obj in readings.items():
            if key == "totals":
                for name, r in obj.items():
                    if name not in TOTALS:
                        raise ValueError("unknown total %r" % name)
                    targets.append((self.totals[TOTALS.index(name)], None, r))
                continue
            d = self.devices.get(key)
            if d is None:
                raise ValueError("unknown device %r" % key)
            targets.append((d.reading, d, obj))
        for reading, dev, obj in targets:
            reading.update(obj.get("current_ma"), obj.get("voltage_v"), obj.get("power_w"), obj.get("power_va"),
                           obj.get("import_wh"), obj.get("export_wh"), obj.get("phase_w"), now_ms)
            if dev is not None:
                if "status" in obj:
                    dev.status = int(obj["status"])
                if "soc_pct" in obj:
                    dev.soc_pct = int(obj["soc_pct"])
        self.version += 1
