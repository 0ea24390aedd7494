# Smart charging at the box: the charging profiles (ocpp/charging.py, pure) read from and written to flash, and
# their limit now turned into the local EVSE's OCPP limit, re-evaluated at each period boundary and whenever
# the transaction changes. Loaded on the first SetChargingProfile, ClearChargingProfile, GetCompositeSchedule
# or RemoteStartTransaction with a profile, or at boot when profiles are stored: a box without profiles never
# imports it (docs/ocpp.md, "Memory").
import json
import os
import time

from loadpilot.ocpp.charging import Profiles
from loadpilot.ocpp.tx import unix_now


class SmartCharging:
    def __init__(self, svc):
        self.svc = svc
        self.path = (svc._root + "/" if svc._root else "") + "ocpp/profiles.json"
        items = ()
        try:
            with open(self.path) as f:
                items = json.load(f)
        except (OSError, ValueError):
            pass
        self.profiles = Profiles(svc.config.get("ocpp_connector_id"), items, svc.log)
        if self.profiles.dropped:  # stored for another connector (ocpp_connector_id changed since): gone for good
            self.store()
        self.ma = None      # the profiles' limit now (mA), None: no limit
        self.at = 0         # ticks_ms of the next re-evaluation (a period boundary, at most an hour)
        self.txid = None    # the transaction id the limit was last evaluated with

    def charging(self):
        """core.charging(): (Profiles, Unix s now, the box's max mA)."""
        ev = self.svc.evse
        return self.profiles, unix_now(), ev.limits.hardware_ma if ev is not None else 32000

    def store(self):
        """Write the profiles: a new file renamed over the old one, so a power cut leaves one of them whole."""
        path = self.path
        try:
            try:
                os.mkdir(path[:path.rfind("/")])
            except OSError:
                pass
            with open(path + ".new", "w") as f:
                json.dump(self.profiles.stored(), f)
            os.rename(path + ".new", path)
        except OSError as e:
            self.svc.log.error("ocpp", "charging profiles not stored: %s" % e)

    def eval(self):
        """The profile limit now, into the EVSE limit; the next re-evaluation at the next period boundary."""
        tx = self.svc.tx
        t = tx.current() if tx is not None else None
        txid = t.txid if t is not None and t.txid is not None and t.txid >= 0 else None
        now = unix_now()
        ma, nxt = self.profiles.limit(now, txid, t.ts_start if t is not None else None)
        self.ma = ma
        wait = 3600 if nxt is None or nxt - now > 3600 else max(1, nxt - now)  # drift-safe: at least hourly
        self.at = time.ticks_add(time.ticks_ms(), wait * 1000)
        self.svc._apply_availability()

    def changed(self):
        """SetChargingProfile or ClearChargingProfile changed the profiles."""
        self.store()
        self.eval()
        self.svc.log.info("ocpp", "charging profiles: %d, limit %s mA" % (len(self.profiles.items), self.ma))

    def tick(self):
        """Every tick, allocating nothing unless something changed: the transaction's id, a boundary."""
        tx = self.svc.tx
        t = tx.current()
        txid = t.txid if t is not None and t.txid is not None and t.txid >= 0 else None
        if txid != self.txid:
            self.txid = txid
            rp = tx.remote_profile
            if txid is not None and rp is not None:  # RemoteStartTransaction's chargingProfile: its TxProfile
                tx.remote_profile = None
                cid = self.svc.config.get("ocpp_connector_id")
                st, why = self.profiles.set(cid, rp, txid, unix_now())
                if st == "Accepted":
                    self.store()
                else:
                    self.svc.log.warn("ocpp", "RemoteStartTransaction's chargingProfile not set: %s" % why)
            elif txid is None and self.profiles.end_tx():
                self.store()
            self.eval()
        elif time.ticks_diff(time.ticks_ms(), self.at) >= 0:
            self.eval()
