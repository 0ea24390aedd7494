"""OCPP 1.6J features on the MicroPython binary against the `ocpp` central system: clock-aligned MeterValues
(ClockAlignedDataInterval, MeterValuesAlignedData), TriggerMessage MeterValues, the statuses SuspendedEV,
SuspendedEVSE and Finishing, the authorization cache learning from StartTransaction answers, and charging
profiles from flash checked against ocpp_connector_id. Every message passes the library's schemas (a message
that did not would be answered with a CALLERROR, and none is)."""
import calendar
import json
import time

import pytest
from ocpp.v16 import call

from firmware_proc import Firmware, free_port, wait_for
from ocpp_peers import Backend
from test_ocpp_charging_mp import _set, profile
from test_ocpp_tx_mp import _config, _rfid, _url, plug, unplug

pytestmark = pytest.mark.mp


@pytest.fixture
def backend():
    b = Backend(interval=30).start()
    yield b
    b.stop()


def _no_callerrors(b):
    return [m for m in b.frames if json.loads(m)[0] == 4] == []


def _ts(mv):
    return calendar.timegm(time.strptime(mv["meter_value"][0]["timestamp"], "%Y-%m-%dT%H:%M:%SZ"))


def _contexts(mv):
    return {sv["context"] for sv in mv["meter_value"][0]["sampled_value"]}


def _measurands(mv):
    return {sv["measurand"] for sv in mv["meter_value"][0]["sampled_value"]}


def _keys(b, *keys):
    r = b.call(call.GetConfiguration(key=list(keys)))
    return {k["key"]: (k["value"], k["readonly"]) for k in r.configuration_key}


def test_clock_aligned_meter_values(backend):
    b = backend
    with Firmware(config=_config(_url(b.port), ocpp_meter_interval_s=0)) as fw:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        assert "loadpilot.ocpp.aligned" not in fw.ctl("modules")  # interval 0: not even imported
        assert _keys(b, "ClockAlignedDataInterval", "MeterValuesAlignedData", "MeterValuesAlignedDataMaxLength",
                     "StopTxnAlignedData", "StopTxnSampledData") == {
            "ClockAlignedDataInterval": ("0", False), "MeterValuesAlignedData": ("Energy.Active.Import.Register", False),
            "MeterValuesAlignedDataMaxLength": ("5", True), "StopTxnAlignedData": ("", True),
            "StopTxnSampledData": ("", True)}
        # validated like MeterValuesSampledData; bad values change nothing
        for key, bad in (("MeterValuesAlignedData", "Voltage,Nonsense"), ("MeterValuesAlignedData", ""),
                         ("MeterValuesAlignedData", "Voltage,Voltage"), ("ClockAlignedDataInterval", "-5"),
                         ("ClockAlignedDataInterval", "86401"), ("ClockAlignedDataInterval", "2.5"),
                         ("StopTxnAlignedData", "Voltage")):
            assert b.call(call.ChangeConfiguration(key=key, value=bad)).status == "Rejected", (key, bad)
        assert fw.ctl("config_get", key="ocpp_aligned_interval_s") == 0
        for bad in ("SoC", "Voltage,Voltage", ""):  # the setting itself is checked the same way
            with pytest.raises(RuntimeError, match="each once"):
                fw.ctl("config_set", key="ocpp_aligned_measurands", value=bad)
        assert fw.ctl("config_get", key="ocpp_aligned_measurands") == "Energy.Active.Import.Register"
        assert b.call(call.ChangeConfiguration(key="MeterValuesAlignedData",
                                               value="Energy.Active.Import.Register,Power.Active.Import")).status \
            == "Accepted"
        time.sleep(2.5)
        assert b.meter_values == []  # no sample without the interval
        assert b.call(call.ChangeConfiguration(key="ClockAlignedDataInterval", value="2")).status == "Accepted"
        assert fw.ctl("config_get", key="ocpp_aligned_interval_s") == 2
        # no transaction: samples anyway, without a transactionId, at even wall-clock seconds
        assert wait_for(lambda: len(b.meter_values) >= 3, 10)
        assert "loadpilot.ocpp.aligned" in fw.ctl("modules")
        mvs = b.meter_values[:3]
        for mv, rx in zip(mvs, b.meter_rx):
            assert mv["connector_id"] == 1 and "transaction_id" not in mv
            assert _contexts(mv) == {"Sample.Clock"}
            assert _measurands(mv) == {"Energy.Active.Import.Register", "Power.Active.Import"}
            assert _ts(mv) % 2 == 0
            assert -0.5 <= rx - _ts(mv) < 1.5, (rx, _ts(mv))  # sent at the boundary, not an interval later
        assert [_ts(m) - _ts(mvs[0]) for m in mvs] == [0, 2, 4]

        # a transaction runs: the aligned samples carry its id
        plug(fw)
        assert wait_for(lambda: len(b.starts) == 1, 5)
        txid = b.starts[0]["transaction_id"]
        assert wait_for(lambda: any(m.get("transaction_id") == txid for m in b.meter_values), 6)
        unplug(fw)
        assert wait_for(lambda: len(b.stops) == 1, 5)
        td = b.stops[0]["transaction_data"]  # StopTxnAlignedData is empty: the Begin/End meter only
        assert [x["sampled_value"][0]["context"] for x in td] == ["Transaction.Begin", "Transaction.End"]
        n = len(b.meter_values)
        assert wait_for(lambda: len(b.meter_values) > n, 5)
        assert "transaction_id" not in b.meter_values[-1]

        # 0: no more samples
        assert b.call(call.ChangeConfiguration(key="ClockAlignedDataInterval", value="0")).status == "Accepted"
        time.sleep(0.5)
        n = len(b.meter_values)
        time.sleep(3)
        assert len(b.meter_values) == n
        assert fw.ctl("ocpp")["transactions"]["meter_samples"] == 0
        assert _no_callerrors(b)


def test_trigger_message_meter_values(backend):
    b = backend
    with Firmware(config=_config(_url(b.port), ocpp_meter_interval_s=0)) as fw:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        assert b.call(call.TriggerMessage(requested_message="MeterValues", connector_id=2)).status == "Rejected"
        time.sleep(1)
        assert b.meter_values == []
        assert b.call(call.TriggerMessage(requested_message="MeterValues")).status == "Accepted"
        assert wait_for(lambda: len(b.meter_values) == 1, 5)
        mv = b.meter_values[0]
        assert mv["connector_id"] == 1 and "transaction_id" not in mv and _contexts(mv) == {"Trigger"}
        assert "Energy.Active.Import.Register" in _measurands(mv)  # MeterValuesSampledData chooses
        assert abs(_ts(mv) - time.time()) < 5
        assert b.call(call.TriggerMessage(requested_message="MeterValues", connector_id=0)).status == "Accepted"
        assert wait_for(lambda: len(b.meter_values) == 2, 5)
        assert b.meter_values[1]["connector_id"] == 0 and "transaction_id" not in b.meter_values[1]
        plug(fw)
        assert wait_for(lambda: len(b.starts) == 1, 5)
        txid = b.starts[0]["transaction_id"]
        assert wait_for(lambda: fw.ctl("ocpp")["transactions"]["transaction_id"] == txid, 5)
        assert b.call(call.TriggerMessage(requested_message="MeterValues", connector_id=1)).status == "Accepted"
        assert wait_for(lambda: len(b.meter_values) == 3, 5)
        assert b.meter_values[2]["transaction_id"] == txid and _contexts(b.meter_values[2]) == {"Trigger"}
        time.sleep(1)
        assert len(b.meter_values) == 3  # once, not repeated
        unplug(fw)
        assert _no_callerrors(b)


def test_suspended_and_finishing_statuses(backend):
    b = backend

    def last():
        ours = [s for s in b.statuses if s[0] == 1]
        return ours[-1][1] if ours else None
    with Firmware(config=_config(_url(b.port))) as fw:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        assert wait_for(lambda: last() == "Available", 5)
        fw.ctl("set_adc", name="cp", mv=9000)  # B: the car is there and does not ask for current
        assert wait_for(lambda: len(b.starts) == 1, 5)
        assert wait_for(lambda: fw.ctl("evse")["offered_ma"] > 0, 5)
        # the transaction runs, the box offers current, the car does not take it
        assert wait_for(lambda: last() == "SuspendedEV", 5)
        fw.ctl("set_adc", name="cp", mv=6000)  # C
        assert wait_for(lambda: last() == "Charging", 5)
        # the backend's profile says 0 A: the box holds the car
        assert _set(b, 1, profile(1, 0)) == "Accepted"
        assert wait_for(lambda: fw.ctl("evse")["offered_ma"] == 0, 5)
        assert wait_for(lambda: last() == "SuspendedEVSE", 5)
        assert b.call(call.ClearChargingProfile(id=1)).status == "Accepted"
        assert wait_for(lambda: last() == "Charging", 5)
        # the transaction ends while the car is still plugged: Finishing, until it is unplugged
        txid = b.starts[0]["transaction_id"]
        assert wait_for(lambda: fw.ctl("ocpp")["transactions"]["transaction_id"] == txid, 5)
        assert b.call(call.RemoteStopTransaction(transaction_id=txid)).status == "Accepted"
        assert wait_for(lambda: last() == "Finishing", 5)
        assert wait_for(lambda: len(b.stops) == 1, 5)
        time.sleep(1)
        assert last() == "Finishing"
        unplug(fw)
        assert wait_for(lambda: last() == "Available", 5)
        seq = [s[1] for s in b.statuses if s[0] == 1]
        # before the manager's first decision the box offers 0 A: SuspendedEVSE (or Preparing before the Start)
        while seq[1] in ("Preparing", "SuspendedEVSE"):
            seq.pop(1)
        assert seq == ["Available", "SuspendedEV", "Charging", "SuspendedEVSE", "Charging", "Finishing",
                       "Available"]
        assert _no_callerrors(b)


def test_the_authorization_cache_learns_from_start_transaction(backend):
    b = backend
    http_port = free_port()
    devices = [{"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "auth_required": True}]
    cfg = _config(_url(b.port), devices=devices, http_port=http_port, vehicle_connection_timeout_s=300,
                  ocpp_local_preauthorize=True)
    with Firmware(config=cfg) as fw:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        fw.wait_port(http_port)
        # the ID reaches the backend only through RemoteStart and StartTransaction: no Authorize
        plug(fw)
        assert b.call(call.RemoteStartTransaction(id_tag="0C0FFEE0", connector_id=1)).status == "Accepted"
        assert wait_for(lambda: len(b.starts) == 1, 5)
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, 10)
        unplug(fw)
        assert wait_for(lambda: len(b.stops) == 1, 5)
        # the StartTransaction answer (Accepted) put it in the cache: LocalPreAuthorize lets it start at once
        plug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 1)
        st, ans = _rfid(http_port, "0c0ffee0")
        assert st == 200 and ans["result"] == "authorized", ans
        assert b.authorizes == []
        assert wait_for(lambda: len(b.starts) == 2, 5)
        unplug(fw)
        assert wait_for(lambda: len(b.stops) == 2, 5)
        # the backend now answers the Start with Invalid: the ID leaves the cache ...
        b.unknown_tags.add("0C0FFEE0")
        plug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 1)
        st, ans = _rfid(http_port, "0c0ffee0")
        assert st == 200 and ans["result"] == "authorized", ans  # still cached at this moment
        assert wait_for(lambda: len(b.stops) == 3, 5)
        assert b.stops[2]["reason"] == "DeAuthorized"
        unplug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 0)
        # ... so offline it is refused (it would be accepted from the cache by LocalAuthorizeOffline)
        fw.ctl("config_set", key="ocpp_url", value=_url(free_port()))
        assert wait_for(lambda: fw.ctl("ocpp")["state"] != "connected", 5)
        plug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 1)
        st, ans = _rfid(http_port, "0c0ffee0")
        assert st == 400, ans
        unplug(fw)
        assert _no_callerrors(b)


def test_profiles_from_flash_for_another_connector_are_dropped(tmp_path):
    fs = str(tmp_path)
    b = Backend(interval=30).start()
    try:
        fw = Firmware(fs_dir=fs, config=_config(_url(b.port))).start()
        try:
            assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
            assert _set(b, 1, profile(1, 10)) == "Accepted"
            assert _set(b, 0, profile(2, 16, purpose="ChargePointMaxProfile")) == "Accepted"
            assert wait_for(lambda: fw.ctl("ocpp")["charging"] == {"profiles": 2, "limit_ma": 10000}, 3)
            fw.ctl("config_set", key="ocpp_connector_id", value=2)  # the box becomes connector 2
            time.sleep(2.5)  # the setting is committed
        finally:
            fw.stop()
        fw = Firmware(fs_dir=fs).start()
        try:
            assert wait_for(lambda: fw.ctl("ocpp")["charging"] is not None, 15)
            # connector 1's TxDefaultProfile is gone, with a log line; connector 0's cap stays
            assert fw.ctl("ocpp")["charging"] == {"profiles": 1, "limit_ma": 16000}
            assert "charging profile 1 dropped: it is for connector 1, ours is 2" in fw.read_output()
            assert fw.ctl("evse")["limit"]["ocpp_ma"] == 16000
            with open(tmp_path / "ocpp" / "profiles.json") as f:
                assert [cid for cid, p in json.load(f)] == [0]  # and gone from flash
        finally:
            fw.stop()
    finally:
        b.stop()


def test_modbus_and_ocpp_availability_each_show_on_the_other_side(backend):
    """OMCCI 104 reads the status OCPP sends (so a backend's ChangeAvailability shows there), and a Modbus
    master taking the box out of service (OMCCI 124 = 0) makes OCPP report the connector Unavailable."""
    from pymodbus.client import ModbusTcpClient
    b = backend
    om = free_port()
    with Firmware(config=_config(_url(b.port), omcci_tcp_port=om)) as fw:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        fw.wait_port(om)
        with ModbusTcpClient("127.0.0.1", port=om) as c:
            def reg104():
                return c.read_holding_registers(104, count=1, device_id=1).registers[0]
            assert wait_for(lambda: reg104() == 0)  # Available
            assert b.call(call.ChangeAvailability(connector_id=1, type="Inoperative")).status == "Accepted"
            assert wait_for(lambda: reg104() == 7)  # Unavailable, as the backend was told
            assert wait_for(lambda: (1, "Unavailable", "NoError") in b.statuses)
            assert b.call(call.ChangeAvailability(connector_id=1, type="Operative")).status == "Accepted"
            assert wait_for(lambda: reg104() == 0)
            n = len(b.statuses)
            assert not c.write_register(124, 0, device_id=1).isError()  # the Modbus master: out of service
            assert wait_for(lambda: (1, "Unavailable", "NoError") in b.statuses[n:])
            assert reg104() == 7 and fw.ctl("evse")["offered_ma"] == 0
            n = len(b.statuses)
            assert not c.write_register(124, 1, device_id=1).isError()
            assert wait_for(lambda: (1, "Available", "NoError") in b.statuses[n:]) and reg104() == 0
        assert _no_callerrors(b)
