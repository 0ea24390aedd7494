"""OCPP MeterValues of the box's own connector on the MicroPython binary against the `ocpp` central system:
periodic samples tied to the transaction with the S0 energy, power, per-phase current, the offered current;
MeterValuesSampledData (validated) chooses the measurands; interval 0 stops them; samples go before the Stop;
transactionData in StopTransaction."""
import time

import pytest
from ocpp.v16 import call

from firmware_proc import Firmware, wait_for
from ocpp_peers import Backend
from test_ocpp_tx_mp import _config, _url, plug, pulses, unplug

pytestmark = pytest.mark.mp


def _values(mv):
    """measurand/phase -> (value, unit, context) of one MeterValues payload."""
    out = {}
    for sv in mv["meter_value"][0]["sampled_value"]:
        out[(sv["measurand"], sv.get("phase"))] = (sv["value"], sv["unit"], sv["context"])
    return out


def test_meter_values_during_a_transaction():
    b = Backend(interval=30).start()
    try:
        with Firmware(config=_config(_url(b.port), ocpp_meter_interval_s=1)) as fw:
            assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
            time.sleep(2)
            assert b.meter_values == []  # no transaction: no samples
            r = b.call(call.GetConfiguration(key=["MeterValuesSampledData", "MeterValueSampleInterval"]))
            got = {k["key"]: k["value"] for k in r.configuration_key}
            assert got == {"MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import,"
                           "Current.Import,Current.Offered,Voltage", "MeterValueSampleInterval": "1"}
            plug(fw)
            assert wait_for(lambda: len(b.starts) == 1, 5)
            txid = b.starts[0]["transaction_id"]
            assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, timeout=10)
            pulses(fw, 4)
            assert wait_for(lambda: fw.ctl("evse")["s0"][0]["energy_wh"] == 4)
            n = len(b.meter_values)
            assert wait_for(lambda: len(b.meter_values) >= n + 2, 5)
            mv = b.meter_values[-1]
            assert mv["connector_id"] == 1 and mv["transaction_id"] == txid
            v = _values(mv)
            assert v[("Energy.Active.Import.Register", None)] == ("4", "Wh", "Sample.Periodic")
            assert v[("Power.Active.Import", None)][1] == "W"
            for ph in ("L1", "L2", "L3"):
                assert v[("Current.Import", ph)][1] == "A"
                assert v[("Voltage", ph + "-N")][1] == "V"
            offered = fw.ctl("evse")["offered_ma"]
            assert offered > 0 and float(v[("Current.Offered", None)][0]) == offered / 1000
            ts = mv["meter_value"][0]["timestamp"]
            assert abs(time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone - time.time()) < 10

            # MeterValuesSampledData: validated, then only the chosen measurands
            for bad in ("Energy.Active.Import.Register,Nonsense", "", "Voltage,Voltage", "SoC"):
                assert b.call(call.ChangeConfiguration(key="MeterValuesSampledData", value=bad)).status == \
                    "Rejected"
            assert fw.ctl("config_get", key="ocpp_meter_measurands").startswith("Energy")
            assert b.call(call.ChangeConfiguration(key="MeterValuesSampledData",
                                                   value="Energy.Active.Import.Register")).status == "Accepted"
            n = len(b.meter_values)
            assert wait_for(lambda: len(b.meter_values) >= n + 2, 5)
            assert list(_values(b.meter_values[-1])) == [("Energy.Active.Import.Register", None)]

            # interval 0: no more samples
            assert b.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="0")).status == "Accepted"
            time.sleep(1.5)
            n = len(b.meter_values)
            time.sleep(2.5)
            assert len(b.meter_values) == n
            assert b.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="1")).status == "Accepted"
            assert wait_for(lambda: len(b.meter_values) >= n + 1, 5)
            unplug(fw)
            assert wait_for(lambda: len(b.stops) == 1, 5)
            # transactionData: the start and end meter
            td = b.stops[0]["transaction_data"]
            assert [(x["sampled_value"][0]["value"], x["sampled_value"][0]["context"]) for x in td] == \
                [("0", "Transaction.Begin"), ("4", "Transaction.End")]
            assert td[1]["timestamp"] == b.stops[0]["timestamp"]
            time.sleep(2.5)
            # the samples of a transaction go before its Stop, and none after it
            order = [m.split('"')[3] for m in b.frames if '"MeterValues"' in m or '"StopTransaction"' in m]
            assert order[-1] == "StopTransaction" and "MeterValues" in order
            assert fw.ctl("ocpp")["transactions"]["meter_samples"] == 0
    finally:
        b.stop()
