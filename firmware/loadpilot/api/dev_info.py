# get_dev_info views (reference/http-api.md): "params" and one object per device, built from the config, the
# site snapshot and what the command layer recorded. Shared by HTTP get_dev_info and the MQTT get/... topics.
# parts() streams the whole document device by device, so 25 wallboxes + 8 meters never exist as one string.
import json
import time

from loadpilot import VERSION
from loadpilot.api.commands import HTTP_INPUT
from loadpilot.config.schema import redact_url
from loadpilot.site import ST_OFFLINE, DeviceState

PARAM_KEYS = ("title", "desc", "max_total_current", "reserve_current", "overdraft_cur", "max_total_evse_current",
              "max_imbalance_current", "lb_enabled", "disable_policy")


class DevInfo:
    def __init__(self, store, site, commands, evse=None):
        self.store = store
        self.site = site
        self.commands = commands
        self.evse = evse  # the local charge point's EvseTask, or None

    def params(self):
        s = self.store
        out = {}
        for k in PARAM_KEYS:
            out[k] = s.get(k)
        out["max_total_cur_prc"] = s.volatile.get("max_total_cur_prc")
        out["cons_evse_power"] = sum(d.reading.power_w for d in self.site.devices.values() if d.is_evse)
        out["version"] = VERSION
        out["time"] = time.time()
        return out

    def com_err(self, dev, state):
        """True when a device has no current data: never updated, or an HTTP-input device silent longer than
        http_input_timeout_s."""
        at = state.reading.updated_ms
        if at is None:
            return True
        if dev["driver"] == HTTP_INPUT:
            return time.ticks_diff(time.ticks_ms(), at) > self.store.get("http_input_timeout_s") * 1000
        return False

    def expire(self):
        """Mark HTTP-input wallboxes whose data timed out as offline (state 6), so every reporter sees it."""
        for dev in self.store.get("devices"):
            st = self.site.device(dev["dev_id"])
            if st is not None and st.is_evse and dev["driver"] == HTTP_INPUT and self.com_err(dev, st):
                st.status = ST_OFFLINE

    def device(self, dev):
        """One device (a config dict) in get_dev_info form."""
        dev_id = dev["dev_id"]
        st = self.site.device(dev_id) or DeviceState(dev_id)  # configured but not yet in the site snapshot
        r = st.reading
        err = self.com_err(dev, st)
        address = dev["address"]
        if "://" in address:
            address = redact_url(address)
        c = self.commands
        out = {"dev_type": dev["driver"], "device_enabled": 1 if dev["device_enabled"] else 0, "name": dev["name"],
               "address": address, "id": dev["id"], "dev_id": dev_id, "number": int(dev_id[1:]),
               "com_err": err, "is_evse": st.is_evse, "model": c.http_info.get(dev_id, {}).get("model", ""),
               "power_w": r.power_w, "current_l1": r.current_ma[0], "current_l2": r.current_ma[1],
               "current_l3": r.current_ma[2]}
        if st.is_evse:
            phases = 0
            for i in range(3):
                if r.current_ma[i] > 0:
                    phases |= 1 << i
            out.update({"min_charging_cur": dev["min_charging_cur"], "max_charging_cur": dev["max_charging_cur"],
                        "prio": dev["prio"], "charging_enabled": c.charging_enabled(dev_id),
                        "cur_charging_power": r.power_w, "total_energy": r.import_wh, "phases": phases,
                        "state": ST_OFFLINE if err else st.status, "paused": False,
                        "rfid": c.rfids.get(dev_id, ""), "override": c.overrides.get(dev_id)})
            mcc = c.http_info.get(dev_id, {}).get("max_charging_current")
            if mcc is not None:
                out["max_charging_current"] = mcc
        else:
            out.update({"is_va": False, "invert": False, "import": r.import_wh, "export": r.export_wh,
                        "power_va": r.power_va, "voltage_l1": r.voltage_v[0], "voltage_l2": r.voltage_v[1],
                        "voltage_l3": r.voltage_v[2], "role": dev["role"]})
        return out

    def config_of(self, dev_id):
        for d in self.store.get("devices"):
            if d["dev_id"] == dev_id:
                return d
        return None

    def device_json(self, dev_id):
        d = self.config_of(dev_id)
        return None if d is None else json.dumps(self.device(d))

    def whole(self):
        """The whole document as one object (for small callers; MQTT uses parts())."""
        return {"params": self.params(), "devices": [self.device(d) for d in self.store.get("devices")]}

    def parts(self):
        """The document as UTF-8 chunks: the params, then one chunk per device."""
        yield b'{"params":'
        yield json.dumps(self.params()).encode()
        yield b',"devices":['
        first = True
        for d in self.store.get("devices"):
            if not first:
                yield b","
            first = False
            yield json.dumps(self.device(d)).encode()
        yield b"]}"

    def snapshot(self):
        """The chunks as a list (each chunk one device): the total exists once as pieces, never as one string,
        and a QoS 1 resend repeats exactly what was counted."""
        return list(self.parts())

