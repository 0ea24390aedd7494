# The local charge point as a Modbus slave: the Power Brain map (EVSE and S0 meters) and the OMCCI map.
# Reads come from the images, which refresh() fills five times a second; writes go through the command layer
# (persistent settings through the store, overrides into EvseControl). The local charge point's driver
# (devices/evse_local.py) is the one writer of the EVSE: on_change() asks it to apply a write at once.
import asyncio
import time

from loadpilot import VERSION
from loadpilot.api.commands import CommandError
from loadpilot.modbus.image import WRITE_APPLIED, RegisterImage
from loadpilot.modbus.pdu import ILLEGAL_VALUE, Router
from loadpilot.registers import omcci, powerbrain as pb

# Power Brain register -> config key (persisted); the S0 keys get "s0_<n>_" in front
# (pairs: constant tables stay in flash, where a dict would be built in RAM at import)
_PB_EVSE_CONFIG = (("def_fixed_current_ma", "evse_def_fixed_current"),
                   ("def_charging_cur_limit_ma", "evse_def_cur_limit"), ("def_charging_enable", "evse_def_enable"),
                   ("fail_safe_duration_s", "fail_safe_duration"), ("fail_safe_current_ma", "fail_safe_current"),
                   ("count_restart", "count_restart"), ("slave_id", "pb_evse_id"))
_PB_EVSE_VOLATILE = ("charging_cur_limit_ma", "fixed_current_ma", "charging_enable", "disconnect_cp_s",
                     "relay_select", "relay2")
_OMCCI_CONFIG = (("safe_current_ma", "omcci_safe_current"), ("comm_timeout_s", "omcci_comm_timeout"))
_BOOL_KEYS = ("evse_def_enable",)

# OCPP 1.6 ChargePointStatus in enumeration order, for OMCCI 104
OCPP_AVAILABLE, OCPP_PREPARING, OCPP_CHARGING, OCPP_SUSPENDED_EVSE = 0, 1, 2, 3
OCPP_UNAVAILABLE, OCPP_FAULTED = 7, 8


REFRESH_MS = 200


def _config_key(pairs, key):
    """The config key a register key maps to in a (register key, config key) table, or None."""
    for p in pairs:
        if p[0] == key:
            return p[1]
    return None


class EvseSlaveService:
    def __init__(self, store, commands, evse, control, log, serial="", on_change=None):
        self.on_change = on_change or (lambda now_ms: None)  # now_ms -> applies EvseControl to the EVSE
        self.store = store
        self.commands = commands
        self.evse = evse
        self.control = control
        self.log = log
        self.serial = serial
        self.user_id = ""  # written through OMCCI 1110..1118; 720 shows it while the session has no idTag
        self.pb_evse = RegisterImage(pb.BASE, pb.COUNT, functions=(3, 6, 16), on_write=self._pb_evse_write,
                                     on_read=self._pb_read)
        self.pb_s0 = []
        for i in range(len(evse.s0)):
            self.pb_s0.append(RegisterImage(pb.BASE, pb.COUNT, functions=(3, 6, 16),
                                            on_write=self._s0_writer(i), on_read=self._pb_read))
        # the OMCCI map (1,020 registers: 2 KB) only when something serves it; the servers start once, at boot
        self.omcci = None
        if store.get("omcci_tcp_port") or store.get("slave_rtu_map") == "omcci":
            self.omcci = RegisterImage(omcci.BASE, omcci.COUNT, functions=(3, 4, 6, 16), on_write=self._omcci_write,
                                       on_read=self._omcci_read)
            self.omcci.set_u16(141, omcci.DEVICE_ID)
        self.routers = {}  # name -> Router: "pb_evse", "pb_s0_1", "pb_s0_2", "omcci", "rtu"
        self.build_routers()
        self.refresh()

    # ---- routing

    def build_routers(self):
        s = self.store
        r = {"pb_evse": Router(), "omcci": Router(), "rtu": Router()}
        r["pb_evse"].add(s.get("pb_evse_id"), self.pb_evse)
        for i, img in enumerate(self.pb_s0):
            r["pb_s0_%d" % (i + 1)] = Router()
            r["pb_s0_%d" % (i + 1)].add(s.get("pb_s0_%d_id" % (i + 1)), img)
        if self.omcci is not None:
            r["omcci"].add(s.get("omcci_unit_id"), self.omcci)
        if s.get("slave_rtu_map") == "omcci" and self.omcci is not None:
            r["rtu"].add(s.get("omcci_unit_id"), self.omcci)
        else:
            r["rtu"].add(s.get("pb_evse_id"), self.pb_evse)
            for i, img in enumerate(self.pb_s0):
                r["rtu"].add(s.get("pb_s0_%d_id" % (i + 1)), img)
        # keep the Router objects the servers hold: swap their contents
        for name, new in r.items():
            old = self.routers.get(name)
            if old is None:
                self.routers[name] = new
            else:
                for unit in old.units():
                    old.remove(unit)
                for unit in new.units():
                    old.add(unit, new.get(unit))

    # ---- reads: mark the master as alive (allocation-free: the read path calls this)

    def _pb_read(self, addr, count):
        self.control.pb_access_ms = time.ticks_ms()
        return 0

    def _omcci_read(self, addr, count):
        self.control.omcci_access_ms = time.ticks_ms()
        return 0

    # ---- writes

    @staticmethod
    def _words(data, off, count):
        return [(data[off + 2 * i] << 8) | data[off + 2 * i + 1] for i in range(count)]

    def _apply_changes(self, settings, overrides):
        try:
            if settings:
                self.commands.set_params(settings)
            if overrides:
                self.commands.evse_set(overrides)
        except CommandError as e:
            self.log.warn("modbus", "write refused: %s" % e)
            return ILLEGAL_VALUE
        self.on_change(time.ticks_ms())
        self.refresh()
        return WRITE_APPLIED

    def _pb_evse_write(self, addr, count, data, off):
        self.control.pb_access_ms = time.ticks_ms()
        code, changes = pb.decode_write(pb.table("evse"), addr, self._words(data, off, count))
        if code:
            return code
        settings = {}
        overrides = {}
        for key, v in changes:
            if key in _PB_EVSE_VOLATILE:
                overrides[key] = v
            else:
                ck = _config_key(_PB_EVSE_CONFIG, key)
                settings[ck] = bool(v) if ck in _BOOL_KEYS else v
        rc = self._apply_changes(settings, overrides)
        if "pb_evse_id" in settings:
            self.build_routers()
        return rc

    def _s0_writer(self, index):
        prefix = "s0_%d_" % (index + 1)

        def write(addr, count, data, off):
            self.control.pb_access_ms = time.ticks_ms()
            code, changes = pb.decode_write(pb.table("meter"), addr, self._words(data, off, count))
            if code:
                return code
            settings = {}
            counters = []
            for key, v in changes:
                if key == "slave_id":
                    settings["pb_" + prefix + "id"] = v
                elif key == "count_restart":
                    settings["count_restart"] = v
                elif key == "pulses_per_kwh":
                    settings[prefix + "pulses_per_kwh"] = v
                elif key == "phases":
                    settings[prefix + "phases"] = v
                elif key.startswith("voltage_"):
                    settings[prefix + "voltage"] = v  # one nominal voltage for all phases
                else:
                    counters.append((key, v))
            rc = self._apply_changes(settings, None)
            if rc != WRITE_APPLIED:
                return rc
            meter = self.evse.s0[index]
            now = time.ticks_ms()
            for key, v in counters:  # the S0 counters are the meter's own state, not settings
                if key == "energy_wh":
                    meter.set_energy(v, now)
                elif key == "reset_energy":
                    meter.set_energy(0, now)
                elif key in ("pulses", "reset_pulses"):
                    meter.set_pulses(v if key == "pulses" else 0, now)
            if "pb_" + prefix + "id" in settings:
                self.build_routers()
            self.refresh()
            return WRITE_APPLIED
        return write

    def _omcci_write(self, addr, count, data, off):
        self.control.omcci_access_ms = time.ticks_ms()
        try:
            code, changes = omcci.decode_write(addr, self._words(data, off, count))
        except ValueError:  # a user ID piece that is not text (UnicodeError is a ValueError)
            return ILLEGAL_VALUE
        if code:
            return code
        settings = {}
        overrides = {}
        user_id = None
        for key, v in changes:
            ck = _config_key(_OMCCI_CONFIG, key)
            if ck is not None:
                settings[ck] = v
            elif key in omcci.USER_ID_PIECES:
                user_id = _user_id_piece(self.user_id if user_id is None else user_id,
                                         omcci.USER_ID_PIECES.index(key), v)
            elif key.startswith("dlm_operator_limit_l"):
                lim = settings.get("dlm_operator_limit") or list(self.store.get("dlm_operator_limit"))
                lim[int(key[20]) - 1] = v
                settings["dlm_operator_limit"] = lim
            else:
                overrides[key] = v
        rc = self._apply_changes(settings, overrides)
        if rc == WRITE_APPLIED and user_id is not None:
            self.user_id = user_id
            self.refresh()
        return rc

    async def run(self):
        while True:
            self.refresh()
            await asyncio.sleep_ms(REFRESH_MS)

    # ---- reporting

    def refresh(self):
        s = self.store
        ev = self.evse
        c = self.control
        v = ev.view()
        major, minor = _version()
        common = {"vendor_id": 0xCF050000, "product_id": 1, "device_id": 0x100,
                  "product_version": (major << 8) | minor, "product_build": 0, "mapping_version": 0x0100,
                  "padding_1": 0, "serial_no": self.serial, "name": "LoadPilot Smart Controller",
                  "count_restart": s.get("count_restart")}
        inputs = 0
        for i in range(len(ev.s0)):
            inputs |= ev.s0_level(i) << i
        ev_vals = dict(common, slave_id=s.get("pb_evse_id"), meter_flags=0, has_meter=0,
                       def_fixed_current_ma=s.get("evse_def_fixed_current"),
                       def_charging_cur_limit_ma=s.get("evse_def_cur_limit"),
                       def_charging_enable=1 if s.get("evse_def_enable") else 0,
                       fail_safe_duration_s=s.get("fail_safe_duration"), fail_safe_current_ma=s.get("fail_safe_current"),
                       disconnect_cp_s=v["disconnect_cp_s"], relay_select=1 if v["phases"] == 1 else 0,
                       relay2=c.relay2, cable_current_ma=ev.limits.cable_ma or 0, fixed_current_ma=c.fixed_ma or 0,
                       charge_pilot_state=ev.cp_register(), charging_cur_limit_ma=c.cur_limit_ma,
                       # 8095: the offered current to the nearest 0.1 A (the duty steps are finer than that, so
                       # a limit set through 8093 reads back as written)
                       charging_enable=c.enable, charging_current_ma=(v["offered_ma"] + 50) // 100 * 100,
                       last_rfid="", detected_rfids=0,
                       # bit 8: 1p/3p switching while plugged in (evse.md); bit 9: bit 10 (2nd relay) is valid
                       s0_inputs=inputs | (1 << 9) | (0x100 if ev.phase_switching and
                                                      ev.sm.cfg.switch_when_plugged else 0))
        pb.encode_map(self.pb_evse, "evse", ev_vals)
        for i, img in enumerate(self.pb_s0):
            m = ev.s0[i]
            prefix = "s0_%d_" % (i + 1)
            volt = s.get(prefix + "voltage")
            mask = s.get(prefix + "phases")
            nph = (mask & 1) + (mask >> 1 & 1) + (mask >> 2 & 1)
            per_phase_ma = m.power_w * 1000 // (volt * nph) if nph else 0
            vals = dict(common, slave_id=s.get("pb_" + prefix + "id"), input=0,
                        pulses_per_kwh=s.get(prefix + "pulses_per_kwh"), phases=mask, voltage_l1=volt,
                        voltage_l2=volt, voltage_l3=volt, pulses=m.pulses, time_per_pulse_ms=m.time_per_pulse_ms(),
                        level=0 if inputs & (1 << i) else 1, meter_flags=0, energy_wh=m.energy_wh, power_w=m.power_w)
            for p in range(3):
                vals["current_l%d_ma" % (p + 1)] = per_phase_ma if mask & (1 << p) else 0
            pb.encode_map(img, "meter", vals)
        cp_letter = v["cp"]
        if self.omcci is None:  # no OMCCI map served: nothing below has a reader
            return
        # OMCCI 707-729 from the session tracker: the open session at this box, or the one closed last (held
        # until the next plug-in)
        tracker = self.commands.sessions
        local = self.commands.local_id()
        ses = tracker.session_of(local) if tracker is not None and local is not None else None
        dlm = s.get("dlm_operator_limit")
        om = {"firmware_version": ("%d.%02d" % (major, minor))[:4],  # "0.01" for 0.1.x
              "protocol_version": "1.0", "ocpp_status": _ocpp_status(v, c) if c.ocpp_status is None else c.ocpp_status(),
              "cp_state": omcci.cp_state(cp_letter), "cp_state_hex": 0x0A + omcci.cp_state(cp_letter) - 1,
              "available": c.available, "safe_current_ma": s.get("omcci_safe_current"),
              "comm_timeout_s": s.get("omcci_comm_timeout"), "hw_current_limit_ma": ev.limits.hardware_ma,
              "operator_current_limit_ma": c.cur_limit_ma, "relays_state": (1 if v["contactor"] else 0)
              | (2 if v["phases"] == 1 else 0), "device_id": omcci.DEVICE_ID, "model": "LoadPilot",
              # 706 in whole A, to the nearest as 8095: the duty steps put 16 A at 15.99 A, which read 15
              "signaled_current_ma": (v["offered_ma"] + 500) // 1000 * 1000, "min_current_ma": 6000,
              "hems_current_limit_ma": c.hems_ma if c.hems_ma is not None else 0,
              "user_id": ses.id_tag if ses is not None and ses.id_tag else self.user_id,
              "session_energy_wh": ses.energy_wh() if ses is not None else 0,
              "session_duration_s": ses.charge_ms // 1000 if ses is not None else 0,
              "start_time_hhmmss": _hhmmss(ses.start_s) if ses is not None and ses.wall else 0,
              "end_time_hhmmss": _hhmmss(ses.end_s) if ses is not None and ses.wall and ses.reason else 0,
              "dlm_operator_limit_l1_ma": dlm[0], "dlm_operator_limit_l2_ma": dlm[1],
              "dlm_operator_limit_l3_ma": dlm[2]}
        d = self.commands.site.device(local) if self.commands.site is not None and local is not None else None
        if d is not None:  # 212-227 from the Site: S0 meter 1, else the soft meter's energy (soft_meter.py)
            r = d.reading
            om.update(current_l1_ma=r.current_ma[0], current_l2_ma=r.current_ma[1], current_l3_ma=r.current_ma[2],
                      energy_wh=r.import_wh, power_w=r.power_w, voltage_l1_v=r.voltage_v[0],
                      voltage_l2_v=r.voltage_v[1], voltage_l3_v=r.voltage_v[2])
        omcci.encode(self.omcci, omcci.ROWS, om)


def _user_id_piece(user_id, index, text):
    """The user ID with bytes 4*index..4*index+3 replaced by text (OMCCI 1110 + 2*index). Piece 0 starts a new
    ID, so a shorter ID written piece by piece leaves nothing of the last one."""
    raw = bytearray(20)
    if index:
        old = user_id.encode()
        raw[:len(old)] = old
    piece = text.encode()
    raw[4 * index:4 * index + 4] = piece + bytes(4 - len(piece))
    return bytes(raw).rstrip(b"\0").decode()


def _hhmmss(t):
    """OMCCI 707/710: the local time of day as packed BCD hhmmss (the seed's format for 701), e.g. 0x00143205."""
    lt = time.localtime(t)
    return int("%02d%02d%02d" % (lt[3], lt[4], lt[5]), 16)


def _version():
    parts = VERSION.split(".")
    return int(parts[0]), int(parts[1])


def _ocpp_status(v, c):
    if v["error"] != "none":
        return OCPP_FAULTED
    if not c.available:
        return OCPP_UNAVAILABLE
    if v["contactor"]:
        return OCPP_CHARGING
    if v["cp"] in ("B", "C", "D"):
        return OCPP_SUSPENDED_EVSE if v["offered_ma"] == 0 else OCPP_PREPARING
    return OCPP_AVAILABLE
