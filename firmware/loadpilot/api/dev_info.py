# get_dev_info views (reference/http-api.md): "params" and one object per device, read from the configuration
# and the Site (readings, comm state, the manager's decision and totals) plus what the command layer recorded.
# Nothing here recomputes a figure. Shared by HTTP get_dev_info and the MQTT get/... topics. dev_info_stream.py
# streams the whole document device by device, so 25 wallboxes + 8 meters never exist as one string.
# Fields the box cannot know (label, max_evses, shareware_mode, vsn, ocpp_gateway_*) are left out
# (docs/mqtt-topics.md).
import json
import time

from loadpilot import VERSION
from loadpilot.codes import ST_OFFLINE, T_EVSE_USED
from loadpilot.config.schema import redact_url
from loadpilot.site import DeviceState

PARAM_KEYS = ("title", "desc", "max_total_current", "reserve_current", "overdraft_cur", "max_total_evse_current",
              "max_imbalance_current", "lb_enabled", "disable_policy")
LOCAL_DRIVER = "evse_powerbrain"  # the board's own charge point shows as the Power Brain it is (http-api.md)


def _phase_bits(cur):
    bits = 0
    for i in range(3):
        if cur[i] > 0:
            bits |= 1 << i
    return bits


def _used_phases(dev):
    """Configured phases as a bit field of grid phases (wiring "231": box L1 on grid L2)."""
    wiring = dev.get("wiring") or "123"
    n = dev.get("phases", 3)
    bits = 0
    for i in range(3 if n == 3 else 1):
        bits |= 1 << (ord(wiring[i]) - 49)
    return bits


class DevInfo:
    def __init__(self, store, site, commands, evse=None):
        self.store = store
        self.site = site
        self.commands = commands
        self.evse = evse  # the local charge point's EvseTask, or None
        self.started_ms = time.ticks_ms()  # com_err_secs counts from boot for a device without an error since

    def params(self):
        s = self.store
        site = self.site
        out = {}
        for k in PARAM_KEYS:
            out[k] = s.get(k)
        out["max_total_cur_prc"] = s.volatile.get("max_total_cur_prc")
        used = site.totals[T_EVSE_USED]
        out["cons_evse_power"] = used.power_w if used.updated_ms is not None else 0
        if site.avail_evse_w is not None:
            out["avail_evse_power"] = site.avail_evse_w
        out["cycle_time"] = site.cycle_ms
        out["version"] = VERSION
        out["time"] = int(time.time())
        return out

    def configs(self):
        """The device config dicts in the order they are shown: the board's own charge point first when the
        device list does not name it (with the settings the manager uses for it), then the list."""
        devices = self.store.peek("devices")  # read only: a copy of 25 devices would be ~14 KB per call
        local = self.site.local_id
        if local is None or any(d["dev_id"] == local for d in devices):
            return devices
        lim = self.evse.limits.hardware_ma if self.evse is not None else 32000
        own = {"dev_id": local, "driver": LOCAL_DRIVER, "device_enabled": True, "name": "", "desc": "",
               "address": "evse", "id": 1, "min_charging_cur": 6000, "max_charging_cur": lim, "prio": 1,
               "phases": 3, "wiring": "123"}
        return [own] + devices

    def device(self, dev):
        """One device (a config dict) in get_dev_info form."""
        dev_id = dev["dev_id"]
        st = self.site.device(dev_id) or DeviceState(dev_id)  # configured but not yet in the Site
        r = st.reading
        err = st.com_err or r.updated_ms is None
        address = dev["address"]
        if "://" in address:
            address = redact_url(address)
        c = self.commands
        now = time.ticks_ms()
        since = st.last_error_ms
        out = {"dev_type": dev["driver"], "device_enabled": 1 if dev.get("device_enabled", True) else 0,
               "name": dev.get("name", ""), "address": address, "id": dev.get("id", 1), "dev_id": dev_id,
               "number": int(dev_id[1:]), "desc": dev.get("desc", ""), "com_err": err,
               "com_err_secs": time.ticks_diff(now, self.started_ms if since is None else since) // 1000,
               "com_errors": st.com_errors,
               "last_error": st.last_error, "is_evse": st.is_evse,
               "model": c.http_info.get(dev_id, {}).get("model", ""), "power_w": r.power_w,
               "current_l1": r.current_ma[0], "current_l2": r.current_ma[1], "current_l3": r.current_ma[2]}
        if st.is_evse:
            out.update({"used_phases": _used_phases(dev), "min_charging_cur": dev["min_charging_cur"],
                        "max_charging_cur": dev["max_charging_cur"], "prio": dev["prio"],
                        "charging_enabled": c.charging_enabled(dev_id), "cur_charging_power": r.power_w,
                        "total_energy": r.import_wh, "phases": _phase_bits(r.current_ma),
                        "state": ST_OFFLINE if err else st.status, "paused": st.paused,
                        "pause_time": st.pause_ms // 1000, "pause_min_time": self.site.min_pause_s,
                        "rfid": c.rfids.get(dev_id, ""), "override": c.overrides.get(dev_id),
                        # none / waiting / timeout / authorized (docs/authorization.md)
                        "auth": c.authorizer.state_name(dev_id) if c.authorizer is not None else "none"})
            if c.soft_meter is not None:
                out["soft_meter"] = c.soft_meter.wh(dev_id)  # Wh; the box's total_energy when it has no meter
            mcc = c.http_info.get(dev_id, {}).get("max_charging_current")
            if mcc is not None:
                out["max_charging_current"] = mcc
        else:
            out.update({"is_va": False, "invert": False, "import": r.import_wh, "export": r.export_wh,
                        "power_va": r.power_va, "voltage_l1": r.voltage_v[0], "voltage_l2": r.voltage_v[1],
                        "voltage_l3": r.voltage_v[2], "role": dev["role"]})
        return out

    def config_of(self, dev_id):
        for d in self.configs():
            if d["dev_id"] == dev_id:
                return d
        return None

    def device_json(self, dev_id):
        d = self.config_of(dev_id)
        return None if d is None else json.dumps(self.device(d))

    def whole(self):
        """The whole document as one object (for small callers; MQTT streams it: dev_info_stream.py)."""
        return {"params": self.params(), "devices": [self.device(d) for d in self.configs()]}
