# What outside controllers (a Power Brain master, an OMCCI energy manager, MQTT ctl) ask of the local charge
# point, and the limit that follows when one of them goes silent. The command layer writes these overrides;
# the slave service applies them to the EVSE task. Nothing here touches hardware.
import time


def master_limit(now_ms, last_access_ms, timeout_ms, safe_ma, commanded_ma):
    """-> (limit_ma or None, fail_safe). The fail-safe arms only once a master has spoken (last_access_ms not
    None): a box nobody controls keeps charging at its own limits instead of dropping after the timeout."""
    if timeout_ms and last_access_ms is not None and time.ticks_diff(now_ms, last_access_ms) >= timeout_ms:
        return safe_ma, True
    return commanded_ma, False


class EvseControl:
    ocpp_status = None  # () -> OMCCI 104's status index, set when OCPP runs (app.py): one truth for both

    def __init__(self, store):
        # the defaults a Power Brain master set (8080-8082) apply at boot
        self.cur_limit_ma = store.get("evse_def_cur_limit")
        fixed = store.get("evse_def_fixed_current")
        self.fixed_ma = fixed or None
        self.enable = 1 if store.get("evse_def_enable") else 0
        self.available = 1
        self.hems_ma = None
        self.relay2 = 0
        self.phases_request = None   # 1 or 3, consumed by the slave service
        self.wakeup_s = None         # disconnect_cp seconds, consumed by the slave service
        self.pb_access_ms = None     # last read or write by a Power Brain master (None: never)
        self.omcci_access_ms = None
        self.pb_fail_safe = False
        self.omcci_fail_safe = False

    def view(self):
        return {"cur_limit_ma": self.cur_limit_ma, "fixed_ma": self.fixed_ma, "enable": self.enable,
                "available": self.available, "hems_ma": self.hems_ma, "pb_fail_safe": self.pb_fail_safe,
                "omcci_fail_safe": self.omcci_fail_safe}
