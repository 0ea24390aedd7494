"""OCPP transactions of the box's own connector on the MicroPython binary against the `ocpp` central system:
a whole transaction with the meter from S0 pulses, fixed RFID, two sessions offline delivered in order once
after reconnect, a power cut between journalling a Stop and sending it, a session open at a power cut
(PowerLoss), a backend that refuses the idTag, CALLERRORs and TransactionMessageAttempts, the outbox-full rule."""
import shutil
import time

import pytest

from firmware_proc import Firmware, free_port, wait_for
from ocpp_peers import Backend

pytestmark = pytest.mark.mp


def _config(url, **kw):
    c = {"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "ocpp_url": url, "ocpp_client_id": "CP1",
         "ocpp_ws_ping_s": 0, "commit_delay_s": 1}
    c.update(kw)
    return c


def _url(port):
    return "ws://127.0.0.1:%d/ocpp" % port


def _tx(fw):
    return fw.ctl("ocpp")["transactions"]


def pulses(fw, n):
    """n Wh on S0 meter 1 (1000 pulses/kWh)."""
    for _ in range(n):
        fw.ctl("set_input", name="s0_1", value=1)
        fw.ctl("set_input", name="s0_1", value=0)
        time.sleep(0.03)


def plug(fw):
    fw.ctl("set_adc", name="cp", mv=9000)
    assert wait_for(lambda: fw.ctl("evse")["cp"] == "B")
    fw.ctl("set_adc", name="cp", mv=6000)


def unplug(fw):
    fw.ctl("set_adc", name="cp", mv=12000)
    assert wait_for(lambda: fw.ctl("evse")["cp"] == "A")


def session(fw, wh):
    """A whole session at the box: plugged, charging, wh Wh, unplugged; waits until it is journalled."""
    n = fw.ctl("sessions")["hi_seq"]
    e0 = fw.ctl("evse")["s0"][0]["energy_wh"]
    plug(fw)
    assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, timeout=10)
    assert wait_for(lambda: fw.ctl("sessions")["open"] == 1)  # the tracker (250 ms) has seen the car
    pulses(fw, wh)
    assert wait_for(lambda: fw.ctl("evse")["s0"][0]["energy_wh"] == e0 + wh)
    time.sleep(0.5)  # the tracker has read the meter
    unplug(fw)
    assert wait_for(lambda: fw.ctl("sessions")["open"] == 0 and fw.ctl("sessions")["hi_seq"] == n + 1)


@pytest.fixture
def backend():
    b = Backend(interval=30).start()
    yield b
    b.stop()


def test_a_whole_transaction_with_its_meter_and_fixed_rfid(backend):
    with Firmware(config=_config(_url(backend.port))) as fw:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        pulses(fw, 2)  # energy before the plug-in is not the transaction's
        assert wait_for(lambda: fw.ctl("evse")["s0"][0]["energy_wh"] == 2)
        plug(fw)
        # authorization is off: the transaction starts at once with the free-charging tag
        assert wait_for(lambda: len(backend.starts) == 1, 5)
        st = backend.starts[0]
        assert st["connector_id"] == 1 and st["id_tag"] == "FREECHARGING" and st["meter_start"] == 2
        assert abs(time.mktime(time.strptime(st["timestamp"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
                   - time.time()) < 10
        assert wait_for(lambda: _tx(fw)["transaction_id"] == st["transaction_id"], 3)
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, timeout=10)
        pulses(fw, 5)
        assert wait_for(lambda: fw.ctl("evse")["s0"][0]["energy_wh"] == 7)
        time.sleep(0.5)
        unplug(fw)
        assert wait_for(lambda: len(backend.stops) == 1, 5)
        sp = backend.stops[0]
        assert sp["transaction_id"] == st["transaction_id"] and sp["meter_stop"] == 7
        assert sp["reason"] == "EVDisconnected" and sp["id_tag"] == "FREECHARGING"
        assert wait_for(lambda: _tx(fw)["queued"] == 0 and _tx(fw)["unfinished"] == 0, 3)

        # a box without a reader: the fixed RFID is the idTag
        fw.ctl("config_set", key="ocpp_fixed_rfid", value="FIXED42")
        session(fw, 3)
        assert wait_for(lambda: len(backend.stops) == 2, 5)
        assert backend.starts[1]["id_tag"] == "FIXED42" and backend.starts[1]["meter_start"] == 7
        assert backend.stops[1]["meter_stop"] == 10 and backend.stops[1]["transaction_id"] == \
            backend.starts[1]["transaction_id"]
        time.sleep(1)
        assert len(backend.starts) == 2 and len(backend.stops) == 2  # once each


def test_offline_sessions_are_delivered_in_order_once_after_reconnect():
    dead = free_port()  # nothing listens: the box is offline
    with Firmware(config=_config(_url(dead))) as fw:
        assert wait_for(lambda: fw.ctl("ocpp")["last_error"], 10)
        session(fw, 4)
        session(fw, 6)
        assert _tx(fw)["queued"] == 4 and _tx(fw)["unfinished"] == 2
        b = Backend(interval=30).start()
        try:
            fw.ctl("config_set", key="ocpp_url", value=_url(b.port))  # the link comes back
            assert wait_for(lambda: len(b.stops) == 2, 20)
            time.sleep(1.5)
            assert [s["meter_start"] for s in b.starts] == [0, 4]
            assert [(s["transaction_id"], s["meter_stop"], s["reason"]) for s in b.stops] == \
                [(b.starts[0]["transaction_id"], 4, "EVDisconnected"), (b.starts[1]["transaction_id"], 10,
                                                                        "EVDisconnected")]
            # in the order they happened: Start 1, Stop 1, Start 2, Stop 2
            order = [m.split('"')[3] for m in b.frames if '"StartTransaction"' in m or '"StopTransaction"' in m]
            assert order == ["StartTransaction", "StopTransaction", "StartTransaction", "StopTransaction"]
            assert _tx(fw)["queued"] == 0 and _tx(fw)["unfinished"] == 0
        finally:
            b.stop()


def test_a_power_cut_before_the_stop_is_sent_and_with_a_session_open(tmp_path):
    fs = str(tmp_path)
    port = free_port()
    b = Backend(interval=30).start(port)
    fw = Firmware(fs_dir=fs, config=_config(_url(port))).start()
    try:
        plug(fw)
        assert wait_for(lambda: len(b.starts) == 1, 15)
        txid = b.starts[0]["transaction_id"]
        assert wait_for(lambda: _tx(fw)["transaction_id"] == txid, 3)
        b.stop()  # the backend goes away ...
        pulses(fw, 3)
        unplug(fw)  # ... the Stop is journalled, not sent ...
        assert wait_for(lambda: _tx(fw)["queued"] == 1, 5)
        fw.proc.kill()  # ... and the power fails
        fw.stop()
        b = Backend(interval=30).start(port)
        fw = Firmware(fs_dir=fs).start()
        assert wait_for(lambda: len(b.stops) == 1, 20)
        assert b.stops[0]["transaction_id"] == txid and b.stops[0]["meter_stop"] == 3
        assert b.stops[0]["reason"] == "EVDisconnected" and not b.starts  # the Start is not sent again

        # a session open at the power cut: StopTransaction PowerLoss after the boot, with its last checkpoint
        plug(fw)
        assert wait_for(lambda: len(b.starts) == 1, 10)
        txid = b.starts[0]["transaction_id"]
        fw.proc.kill()
        fw.stop()
        fw = Firmware(fs_dir=fs).start()
        assert wait_for(lambda: len(b.stops) == 2, 20)
        assert b.stops[1]["transaction_id"] == txid and b.stops[1]["reason"] == "PowerLoss"
        assert b.stops[1]["meter_stop"] == b.starts[0]["meter_start"]  # its checkpoint: no energy yet
        time.sleep(1.5)
        assert len(b.stops) == 2 and len(b.starts) == 1
    finally:
        fw.stop()
        b.stop()


def test_the_backend_refuses_the_idtag_and_callerrors_are_retried(backend):
    backend.unknown_tags.add("STRANGER")
    cfg = _config(_url(backend.port), ocpp_fixed_rfid="STRANGER", ocpp_tx_retry_s=1)
    with Firmware(config=cfg) as fw:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        plug(fw)
        # idTagInfo Invalid: the transaction ends at once (DeAuthorized) and the box offers no current
        assert wait_for(lambda: len(backend.stops) == 1, 10)
        assert backend.stops[0]["reason"] == "DeAuthorized"
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 0 and _tx(fw)["blocked"], 5)
        time.sleep(1.5)
        assert fw.ctl("evse")["contactor"] == 0
        unplug(fw)
        assert wait_for(lambda: not _tx(fw)["blocked"], 3)

        # a backend that answers CALLERROR: tried again after the retry interval, given up after the attempts
        fw.ctl("config_set", values={"ocpp_fixed_rfid": "", "ocpp_tx_attempts": 3})
        backend.fail_tx = 2
        plug(fw)
        assert wait_for(lambda: len(backend.starts) == 2, 10)  # the third attempt
        assert fw.wait_output("given up", 0.1) is False
        unplug(fw)
        assert wait_for(lambda: len(backend.stops) == 2, 5)
        assert backend.stops[1]["transaction_id"] == backend.starts[1]["transaction_id"]
        backend.fail_tx = 5
        session(fw, 1)
        assert fw.wait_output("StartTransaction given up after 3 attempts", 10)
        assert fw.wait_output("StopTransaction dropped", 5)
        assert wait_for(lambda: _tx(fw)["queued"] == 0, 3) and len(backend.stops) == 2


@pytest.fixture(scope="module")
def full_outbox(tmp_path_factory):
    """The box's flash after 32 sessions offline fill the outbox: filled once, each case boots a copy of it."""
    fs = str(tmp_path_factory.mktemp("outbox-full"))
    with Firmware(fs_dir=fs, config=_config(_url(free_port()), modbus_tcp_port=0)) as fw:  # nothing listens
        for i in range(32):  # polled every 20 ms: each step is a firmware poll (200-250 ms) away
            fw.ctl("set_adc", name="cp", mv=9000)
            assert wait_for(lambda: fw.ctl("evse")["cp"] == "B", step=0.02)
            fw.ctl("set_adc", name="cp", mv=6000)
            assert wait_for(lambda: _tx(fw)["unfinished"] == i + 1, step=0.02)
            fw.ctl("set_adc", name="cp", mv=12000)
            assert wait_for(lambda: fw.ctl("evse")["cp"] == "A", step=0.02)
            assert wait_for(lambda: fw.ctl("sessions")["open"] == 0, step=0.02)
        assert _tx(fw)["full"] and _tx(fw)["unfinished"] == 32
    return fs


@pytest.mark.parametrize("block", [True, False])
def test_the_outbox_full_rule(full_outbox, tmp_path, block):
    fs = str(tmp_path / "fs")
    shutil.copytree(full_outbox, fs)
    with Firmware(fs_dir=fs) as fw:
        assert wait_for(lambda: _tx(fw)["full"] and _tx(fw)["unfinished"] == 32, 5), _tx(fw)  # kept on flash
        fw.ctl("config_set", key="ocpp_queue_full_block", value=block)
        if block:  # the rule holds before a car comes (the tx poll, every 200 ms, applies the new setting)
            assert wait_for(lambda: fw.ctl("evse")["limit"]["ocpp_ma"] == 0, 5), fw.ctl("evse")
        plug(fw)
        assert fw.wait_output("transaction outbox full", 5)
        if block:  # no current is offered at all: the contactor never closes
            for _ in range(10):
                ev = fw.ctl("evse")
                assert ev["contactor"] == 0 and ev["offered_ma"] == 0 and ev["limit"]["ocpp_ma"] == 0
                time.sleep(0.15)
        else:
            assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, 5)
        assert fw.ctl("sessions")["open"] == 1  # the session is journalled either way
        b = Backend(interval=30).start()
        try:
            fw.ctl("config_set", key="ocpp_url", value=_url(b.port))
            # the backend hears that the queue is full, then gets every transaction, and the waiting session's
            # Start once there is room: then the car charges
            assert wait_for(lambda: "transaction queue full" in b.status_infos, 15)
            assert wait_for(lambda: len(b.starts) == 33, 30)
            assert len(b.stops) == 32
            assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, 10)
        finally:
            b.stop()


def test_remote_start_and_remote_stop(backend):
    from ocpp.v16 import call
    devices = [{"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "auth_required": True}]
    with Firmware(config=_config(_url(backend.port), devices=devices, vehicle_connection_timeout_s=120)) as fw:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        plug(fw)  # the box requires authorization: the car waits at 0 A, no transaction
        time.sleep(1.5)
        assert fw.ctl("evse")["contactor"] == 0 and not backend.starts
        assert backend.call(call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=2)).status == "Rejected"
        assert backend.call(call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1)).status == "Accepted"
        assert wait_for(lambda: len(backend.starts) == 1, 5)
        assert backend.starts[0]["id_tag"] == "REMOTE1"
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, 10)
        # a second RemoteStart while the transaction runs is refused
        assert backend.call(call.RemoteStartTransaction(id_tag="OTHER")).status == "Rejected"
        txid = backend.starts[0]["transaction_id"]
        assert wait_for(lambda: _tx(fw)["transaction_id"] == txid, 3)
        pulses(fw, 2)
        assert wait_for(lambda: fw.ctl("evse")["s0"][0]["energy_wh"] == 2)
        time.sleep(0.6)  # the tracker has read the meter
        assert backend.call(call.RemoteStopTransaction(transaction_id=txid + 1)).status == "Rejected"
        assert backend.call(call.RemoteStopTransaction(transaction_id=txid)).status == "Accepted"
        assert wait_for(lambda: len(backend.stops) == 1, 5)
        assert backend.stops[0]["reason"] == "Remote" and backend.stops[0]["transaction_id"] == txid
        assert backend.stops[0]["meter_stop"] - backend.starts[0]["meter_start"] == 2
        # charging stops; the session stays open until the car is unplugged (OCPP allows it)
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 0, 10)
        assert fw.ctl("sessions")["open"] == 1
        assert backend.call(call.RemoteStartTransaction(id_tag="REMOTE2")).status == "Rejected"
        unplug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 0)
        time.sleep(1)
        assert len(backend.stops) == 1 and len(backend.starts) == 1  # the unplug adds no second Stop

        # RemoteStart before the car comes: the next car within the timeout charges with that idTag
        assert backend.call(call.RemoteStartTransaction(id_tag="REMOTE3")).status == "Accepted"
        plug(fw)
        assert wait_for(lambda: len(backend.starts) == 2, 5)
        assert backend.starts[1]["id_tag"] == "REMOTE3"
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, 10)
        unplug(fw)
        assert wait_for(lambda: len(backend.stops) == 2, 5)
        assert backend.stops[1]["reason"] == "EVDisconnected"


def _rfid(port, tag):
    """enter_rfid for E1 over the HTTP API (factory login) -> (HTTP status, answer)."""
    import base64
    import http.client
    import json
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        auth = "Basic " + base64.b64encode(b"admin:JuiCeMeUP!").decode()
        c.request("GET", "/cnf?cmd=enter_rfid&rfid=%s&dev_id=E1" % tag, headers={"Authorization": auth})
        r = c.getresponse()
        body = r.read()
        return r.status, json.loads(body) if body[:1] == b"{" else body
    finally:
        c.close()


def test_ids_unknown_locally_are_authorized_by_the_backend_or_the_offline_rules(backend):
    from ocpp.v16 import call
    backend.unknown_tags.add("0BADBAD0")
    http_port = free_port()
    devices = [{"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "auth_required": True}]
    cfg = _config(_url(backend.port), devices=devices, http_port=http_port, vehicle_connection_timeout_s=300)
    with Firmware(config=cfg) as fw:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        fw.wait_port(http_port)
        plug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 1)  # the box has seen the car
        # online, not on the local whitelist: the backend is asked; Invalid -> the car stays locked
        st, ans = _rfid(http_port, "0badbad0")
        assert st == 200 and ans["result"] == "asking the backend", ans
        assert wait_for(lambda: backend.authorizes == ["0BADBAD0"], 5)
        time.sleep(1.5)
        assert fw.ctl("evse")["contactor"] == 0 and not backend.starts
        # Accepted -> the car charges, the transaction carries that idTag
        st, ans = _rfid(http_port, "0a0b0c0d")
        assert wait_for(lambda: len(backend.starts) == 1, 5)
        assert backend.authorizes[-1] == "0A0B0C0D" and backend.starts[0]["id_tag"] == "0A0B0C0D"
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, 10)
        unplug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 0)
        assert wait_for(lambda: len(backend.stops) == 1, 5)

        # offline: the cached ID is accepted at once (LocalAuthorizeOffline), an unknown one is refused ...
        fw.ctl("config_set", key="ocpp_url", value=_url(free_port()))
        assert wait_for(lambda: fw.ctl("ocpp")["state"] != "connected", 5)
        plug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 1)  # the box has seen the car
        st, ans = _rfid(http_port, "0a0b0c0d")
        assert st == 200 and ans["result"] == "authorized", ans
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, 10)
        assert wait_for(lambda: _tx(fw)["unfinished"] == 1, 3)  # recorded offline
        unplug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 0)
        plug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 1)  # the box has seen the car
        st, ans = _rfid(http_port, "11223344")
        assert st == 400
        time.sleep(1)
        assert fw.ctl("evse")["contactor"] == 0
        # ... unless AllowOfflineTxForUnknownId
        fw.ctl("config_set", key="ocpp_allow_offline_unknown", value=True)
        st, ans = _rfid(http_port, "11223344")
        assert st == 200 and ans["result"] == "authorized", ans
        assert wait_for(lambda: fw.ctl("evse")["contactor"] == 1, 10)
        assert wait_for(lambda: _tx(fw)["unfinished"] == 2, 3)
        unplug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 0)
        fw.ctl("config_set", key="ocpp_allow_offline_unknown", value=False)

        # back online: both offline transactions are delivered; ClearCache empties the cache for real, and the
        # keys are the backend's to change
        fw.ctl("config_set", key="ocpp_url", value=_url(backend.port))
        assert wait_for(lambda: len(backend.stops) == 3, 20)
        assert [s["id_tag"] for s in backend.starts] == ["0A0B0C0D", "0A0B0C0D", "11223344"]
        assert backend.call(call.ClearCache()).status == "Accepted"
        r = backend.call(call.GetConfiguration(key=["LocalAuthorizeOffline", "AllowOfflineTxForUnknownId"]))
        assert {k["key"]: k["value"] for k in r.configuration_key} == {"LocalAuthorizeOffline": "true",
                                                                      "AllowOfflineTxForUnknownId": "false"}
        assert backend.call(call.ChangeConfiguration(key="LocalAuthorizeOffline", value="maybe")).status == \
            "Rejected"
        fw.ctl("config_set", key="ocpp_url", value=_url(free_port()))
        assert wait_for(lambda: fw.ctl("ocpp")["state"] != "connected", 5)
        plug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 1)  # the box has seen the car
        st, ans = _rfid(http_port, "0a0b0c0d")
        assert st == 400  # no longer cached: refused offline
        unplug(fw)
        assert wait_for(lambda: fw.ctl("sessions")["open"] == 0)


def test_send_local_list_and_offline_authorization(backend, tmp_path):
    from ocpp.v16 import call
    http_port = free_port()
    devices = [{"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse", "auth_required": True}]
    cfg = _config(_url(backend.port), devices=devices, http_port=http_port, ocpp_allow_offline_unknown=True)
    fs = str(tmp_path)
    fw = Firmware(fs_dir=fs, config=cfg).start()
    try:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        assert backend.call(call.GetLocalListVersion()).list_version == 0
        ok = {"status": "Accepted"}
        r = backend.call(call.SendLocalList(list_version=3, update_type="Full", local_authorization_list=[
            {"id_tag": "AABBCCDD", "id_tag_info": ok}, {"id_tag": "0BADBAD0", "id_tag_info": {"status": "Blocked"}},
            {"id_tag": "11111111", "id_tag_info": ok}]))
        assert r.status == "Accepted"
        # differential: an older or equal version is refused and changes nothing; a newer one adds and removes
        r = backend.call(call.SendLocalList(list_version=3, update_type="Differential",
                                            local_authorization_list=[{"id_tag": "22222222", "id_tag_info": ok}]))
        assert r.status == "VersionMismatch"
        r = backend.call(call.SendLocalList(list_version=4, update_type="Differential", local_authorization_list=[
            {"id_tag": "22222222", "id_tag_info": ok}, {"id_tag": "11111111"}]))
        assert r.status == "Accepted"
        too_many = [{"id_tag": "T%d" % i, "id_tag_info": ok} for i in range(51)]  # SendLocalListMaxLength 50
        assert backend.call(call.SendLocalList(list_version=9, update_type="Full",
                                               local_authorization_list=too_many)).status == "Failed"
        # it survives a reboot
        fw.stop()
        fw = Firmware(fs_dir=fs).start()
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        fw.wait_port(http_port)
        assert backend.call(call.GetLocalListVersion()).list_version == 4

        # offline: listed Accepted IDs authorize, a listed Blocked one does not even with
        # AllowOfflineTxForUnknownId, a removed one is unknown (and that setting lets it through)
        fw.ctl("config_set", key="ocpp_url", value=_url(free_port()))
        assert wait_for(lambda: fw.ctl("ocpp")["state"] != "connected", 5)
        for tag, want in (("aabbccdd", 200), ("22222222", 200), ("0badbad0", 400), ("11111111", 200)):
            plug(fw)
            assert wait_for(lambda: fw.ctl("sessions")["open"] == 1)
            st, ans = _rfid(http_port, tag)
            assert st == want, (tag, ans)
            assert wait_for(lambda: fw.ctl("evse")["contactor"] == (1 if want == 200 else 0), 10), tag
            unplug(fw)
            assert wait_for(lambda: fw.ctl("sessions")["open"] == 0)
            time.sleep(0.3)
        assert "11111111 accepted offline (AllowOfflineTxForUnknownId)" in "".join(fw.read_output() or fw.output)
        # with LocalAuthListEnabled off, the backend hears -1 and NotSupported
        fw.ctl("config_set", values={"ocpp_local_list": False, "ocpp_url": _url(backend.port)})
        assert wait_for(lambda: fw.ctl("ocpp")["state"] == "connected", 10)
        time.sleep(0.5)
        assert backend.call(call.GetLocalListVersion()).list_version == -1
        assert backend.call(call.SendLocalList(list_version=5, update_type="Full")).status == "NotSupported"
    finally:
        fw.stop()
