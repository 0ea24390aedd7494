"""OCPP smart charging on the MicroPython binary against the `ocpp` central system: SetChargingProfile limits
the current the box offers (min with the manager's), in A and in W, ChargePointMaxProfile caps, invalid profiles
are Rejected or get a CALLERROR and change nothing, GetCompositeSchedule answers, ClearChargingProfile gives
the current back, profiles survive a reboot, RemoteStartTransaction with a chargingProfile sets the TxProfile."""
import json

import pytest
from ocpp.v16 import call

from firmware_proc import Firmware, wait_for
from ocpp_peers import Backend
from test_ocpp_tx_mp import _config, _url, plug, unplug

pytestmark = pytest.mark.mp


def profile(pid, limit, purpose="TxDefaultProfile", stack=0, unit="A", phases=None, **kw):
    per = {"startPeriod": 0, "limit": limit}
    if phases:
        per["numberPhases"] = phases
    p = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
         "chargingProfileKind": "Absolute",
         "chargingSchedule": {"chargingRateUnit": unit, "chargingSchedulePeriod": [per]}}
    p.update(kw)
    return p


def _set(b, cid, p):
    return b.call(call.SetChargingProfile(connector_id=cid, cs_charging_profiles=p)).status


def _limit(fw):
    return fw.ctl("evse")["limit"]


def test_profiles_limit_the_offered_current(tmp_path):
    fs = str(tmp_path)
    b = Backend(interval=30).start()
    try:
        fw = Firmware(fs_dir=fs, config=_config(_url(b.port))).start()
        try:
            assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
            assert "loadpilot.ocpp.charging" not in fw.ctl("modules")  # no profile: not loaded
            assert fw.ctl("ocpp")["charging"] is None
            plug(fw)
            assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, timeout=10)
            assert wait_for(lambda: fw.ctl("evse")["offered_ma"] > 10000, 10)  # what the manager allows
            assert _limit(fw)["ocpp_ma"] is None
            assert _set(b, 1, profile(1, 10)) == "Accepted"
            assert wait_for(lambda: _limit(fw)["ocpp_ma"] == 10000, 3)
            assert wait_for(lambda: 0 < fw.ctl("evse")["offered_ma"] <= 10000, 5)
            assert _limit(fw)["reason"] == "ocpp"

            r = b.call(call.GetCompositeSchedule(connector_id=1, duration=600))
            assert r.status == "Accepted" and r.connector_id == 1
            assert r.charging_schedule["charging_schedule_period"][0]["limit"] == 10
            assert r.charging_schedule["charging_rate_unit"] == "A"
            assert b.call(call.GetCompositeSchedule(connector_id=7, duration=600)).status == "Rejected"

            # W: 4140 W on 3 phases = 6 A; a higher stack level wins
            assert _set(b, 1, profile(2, 4140, stack=1, unit="W", phases=3)) == "Accepted"
            assert wait_for(lambda: _limit(fw)["ocpp_ma"] == 6000, 3)
            # ChargePointMaxProfile on connector 0 caps everything
            assert _set(b, 0, profile(3, 5, purpose="ChargePointMaxProfile")) == "Accepted"
            assert wait_for(lambda: _limit(fw)["ocpp_ma"] == 5000, 3)
            assert fw.ctl("ocpp")["charging"] == {"profiles": 3, "limit_ma": 5000}

            # invalid: Rejected, nothing changed
            bad = profile(4, 20, stack=2)
            bad["chargingSchedule"]["chargingSchedulePeriod"] = [{"startPeriod": 0, "limit": 20},
                                                                 {"startPeriod": 0, "limit": 8}]
            assert _set(b, 1, bad) == "Rejected"
            assert _set(b, 1, profile(5, 20, purpose="ChargePointMaxProfile")) == "Rejected"  # not connector 0
            assert _set(b, 1, profile(6, 20, purpose="TxProfile", transactionId=999999)) == "Rejected"
            assert _set(b, 3, profile(7, 20)) == "Rejected"
            # malformed: a CALLERROR
            frame = json.dumps([2, "m1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": dict(
                profile(8, 20), chargingProfilePurpose="Nope")}])
            msg, _ = b.raw_call(frame, "m1")
            assert msg[0] == 4 and msg[2] == "PropertyConstraintViolation"
            frame = json.dumps([2, "m2", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": dict(
                profile(9, 20), stackLevel="high")}])
            msg, _ = b.raw_call(frame, "m2")
            assert msg[0] == 4 and msg[2] == "TypeConstraintViolation"
            assert _limit(fw)["ocpp_ma"] == 5000 and fw.ctl("ocpp")["charging"]["profiles"] == 3

            # a period boundary: 5 A now, 7 A from 3 s on (stack 3 wins over the W profile; the cap goes first)
            assert b.call(call.ClearChargingProfile(id=3)).status == "Accepted"
            start = b.now_text()
            p2 = profile(10, 5, stack=3, startSchedule=start)
            p2["chargingSchedule"]["chargingSchedulePeriod"].append({"startPeriod": 3, "limit": 7})
            p2["chargingSchedule"]["startSchedule"] = p2.pop("startSchedule")
            assert _set(b, 1, p2) == "Accepted"
            assert wait_for(lambda: _limit(fw)["ocpp_ma"] == 5000, 3)
            assert wait_for(lambda: _limit(fw)["ocpp_ma"] == 7000, 6)
            assert b.call(call.ClearChargingProfile(id=10)).status == "Accepted"
            assert wait_for(lambda: _limit(fw)["ocpp_ma"] == 6000, 3)
            assert b.call(call.ClearChargingProfile(id=12345)).status == "Unknown"
        finally:
            fw.stop()
        # the profiles survive a reboot
        fw = Firmware(fs_dir=fs, config=_config(_url(b.port))).start()
        try:
            assert wait_for(lambda: _limit(fw)["ocpp_ma"] == 6000, 10)
            assert b.call(call.ClearChargingProfile(charging_profile_purpose="TxDefaultProfile")).status == \
                "Accepted"
            assert wait_for(lambda: _limit(fw)["ocpp_ma"] is None, 3)
            plug(fw)
            assert wait_for(lambda: fw.ctl("evse")["offered_ma"] > 10000, 10)  # back to what the box allows
        finally:
            fw.stop()
    finally:
        b.stop()


def test_remote_start_with_a_tx_profile():
    b = Backend(interval=30).start()
    try:
        devices = [{"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "auth_required": True}]
        with Firmware(config=_config(_url(b.port), devices=devices, vehicle_connection_timeout_s=120)) as fw:
            assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
            plug(fw)  # the car waits for authorization
            bad = profile(1, 7, purpose="TxDefaultProfile")
            assert b.call(call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1,
                                                      charging_profile=bad)).status == "Rejected"
            assert b.call(call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1,
                                                      charging_profile=profile(1, 7, purpose="TxProfile"))).status \
                == "Accepted"
            assert wait_for(lambda: len(b.starts) == 1, 10)
            assert b.starts[0]["id_tag"] == "REMOTE1"
            assert wait_for(lambda: _limit(fw)["ocpp_ma"] == 7000, 5)
            assert wait_for(lambda: 0 < fw.ctl("evse")["offered_ma"] <= 7000, 5)
            unplug(fw)
            assert wait_for(lambda: len(b.stops) == 1, 5)
            assert wait_for(lambda: _limit(fw)["ocpp_ma"] is None, 3)  # the TxProfile ended with its transaction
    finally:
        b.stop()
