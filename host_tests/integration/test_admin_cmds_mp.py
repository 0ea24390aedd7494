"""The commands of reference/http-api.md that the pages and integrations still missed, over HTTP /cnf on the
MicroPython binary: del_device (gone after a reboot, the box's own charge point refused), reset_device (state
and counters anew, settings kept), accept_license (stored flags), set_diag_logging (DEBUG lines while on), and
the OCPP local list filled by a real `ocpp` central system (read, search, delete one, delete all, version 0)."""
import base64
import json
import urllib.error
import urllib.request

import pytest

from firmware_proc import Firmware, free_port, wait_for
from ocpp_peers import Backend

pytestmark = pytest.mark.mp

FACTORY = "JuiCeMeUP!"
DEVICES = [{"dev_id": "E2", "driver": "http_input", "address": "", "name": "Garage", "max_charging_cur": 20000},
           {"dev_id": "E3", "driver": "http_input", "address": "", "name": "Carport"},
           {"dev_id": "M1", "driver": "http_input", "address": "", "role": 3, "attach": ""},
           {"dev_id": "M2", "driver": "http_input", "address": "", "role": 4, "attach": "E3"}]


def call(port, query, body=None):
    h = {"Authorization": "Basic " + base64.b64encode(("operator:%s" % FACTORY).encode()).decode()}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request("http://127.0.0.1:%d/cnf?%s" % (port, query), data=data, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


@pytest.fixture
def box(tmp_path):
    port = free_port()
    fw = Firmware(fs_dir=str(tmp_path), config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "http_port": port,
                                                "devices": DEVICES})
    fw.start()
    try:
        fw.wait_port(port)
        yield fw, port
    finally:
        fw.stop()


def ids(port):
    return sorted(d["dev_id"] for d in call(port, "cmd=get_status")[1]["devices"])


def test_del_device_removes_it_for_good_and_refuses_the_local_charge_point(box, tmp_path):
    fw, port = box
    assert ids(port) == ["E1", "E2", "E3", "M1", "M2"]
    st, ans = call(port, "cmd=del_device&dev_id=E1")
    assert st == 400 and "E1 is this box's own charge point: it cannot be deleted" in ans["error"]
    st, ans = call(port, "cmd=del_device&dev_id=E9")
    assert st == 400 and "unknown device 'E9'" in ans["error"]
    st, ans = call(port, "cmd=del_device")
    assert st == 400 and "needs dev_id" in ans["error"]
    call(port, "cmd=set_ajax_evse&dev_id=E2&state=3&current=8000,8000,8000")
    assert call(port, "cmd=del_device&dev_id=E2") == (200, {"ok": True})
    assert wait_for(lambda: ids(port) == ["E1", "E3", "M1", "M2"], 5)
    assert "E2" not in [d["dev_id"] for d in call(port, "cmd=get_params")[1]["devices"]]
    st, ans = call(port, "cmd=set_ajax_evse&dev_id=E2&state=3")
    assert st == 400 and "unknown device 'E2'" in ans["error"]
    fw.proc.kill()  # a power cut right after the answer: the deletion is on flash already
    fw.proc.wait()
    again = Firmware(fs_dir=str(tmp_path))
    again.start()
    try:
        again.wait_port(port)
        assert [d["dev_id"] for d in again.ctl("config_get", key="devices")] == ["E3", "M1", "M2"]
        assert ids(port) == ["E1", "E3", "M1", "M2"]
    finally:
        again.stop()


def test_reset_device_starts_its_state_anew_and_keeps_its_settings(box):
    fw, port = box
    for _ in range(3):
        assert call(port, "cmd=set_ajax_evse&dev_id=E2&state=3&current=9000,9000,9000&rfid=AABBCCDD")[0] == 200
    call(port, "cmd=override_device&dev_id=E2&mamps=7000")
    dev = [d for d in call(port, "cmd=get_status")[1]["devices"] if d["dev_id"] == "E2"][0]
    assert dev["state"] == 3 and dev["current_ma"] == [9000, 9000, 9000]
    info = json.loads(urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%d/cnf?cmd=get_dev_info" % port, headers={"Authorization": "Basic " + base64.b64encode(
            ("operator:%s" % FACTORY).encode()).decode()}), timeout=10).read())
    assert [d for d in info["devices"] if d["dev_id"] == "E2"][0]["rfid"] == "AABBCCDD"
    assert call(port, "cmd=reset_device&dev_id=E2") == (200, {"ok": True})
    dev = [d for d in call(port, "cmd=get_status")[1]["devices"] if d["dev_id"] == "E2"][0]
    assert dev["state"] == 6 and dev["current_ma"] == [0, 0, 0]  # offline until it pushes again
    info = json.loads(urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%d/cnf?cmd=get_dev_info" % port, headers={"Authorization": "Basic " + base64.b64encode(
            ("operator:%s" % FACTORY).encode()).decode()}), timeout=10).read())
    assert [d for d in info["devices"] if d["dev_id"] == "E2"][0]["rfid"] == ""
    e2 = [d for d in call(port, "cmd=get_params")[1]["devices"] if d["dev_id"] == "E2"][0]
    assert e2["name"] == "Garage" and e2["max_charging_cur"] == 20000  # the settings stay
    assert wait_for(lambda: "E2" in [d["dev_id"] for d in call(port, "cmd=get_status")[1]["devices"]], 3)
    st, ans = call(port, "cmd=set_ajax_evse&dev_id=E2&state=3&current=6000,6000,6000")
    assert st == 200 and "charging_current" in ans  # the recreated device takes data again
    # the box's own charge point may be reset (not deleted): it reports again within its 100 ms step
    assert call(port, "cmd=reset_device&dev_id=E1") == (200, {"ok": True})
    assert wait_for(lambda: [d for d in call(port, "cmd=get_status")[1]["devices"] if d["dev_id"] == "E1"][0]
                    ["state"] == 1, 3)  # waiting for a car, as before
    st, ans = call(port, "cmd=reset_device&dev_id=M7")
    assert st == 400 and "unknown device 'M7'" in ans["error"]


def test_accept_license_stores_the_answers(box):
    fw, port = box
    p = call(port, "cmd=get_params")[1]
    assert p["license_accepted"] is False and p["allow_usage_stats"] is False
    assert call(port, "cmd=accept_license&acc=1&allow_usage_stats=0") == (200, {"ok": True})
    p = call(port, "cmd=get_params")[1]
    assert p["license_accepted"] is True and p["allow_usage_stats"] is False
    st, ans = call(port, "cmd=accept_license&acc=1&allow_usage_stats=yes")
    assert st == 400 and "allow_usage_stats must be 0 or 1" in ans["error"]
    st, ans = call(port, "cmd=accept_license")
    assert st == 400 and "needs acc=1" in ans["error"]


def test_diag_logging_records_debug_lines_while_on(box):
    fw, port = box
    call(port, "cmd=get_params")
    assert not [l for l in call(port, "cmd=get_log&level=DEBUG")[1]["lines"] if l[2] == "DEBUG"]
    st, ans = call(port, "cmd=set_diag_logging&enable=1")
    assert st == 200 and 295 <= ans["diag_logging_s"] <= 300
    assert 290 <= call(port, "cmd=get_status")[1]["diag_logging_s"] <= 300
    call(port, "cmd=get_params")
    lines = call(port, "cmd=get_log&level=DEBUG")[1]["lines"]
    assert any(l[2] == "DEBUG" and l[3] == "http" and "cmd=get_params: 200" in l[4] for l in lines), lines
    assert call(port, "cmd=set_diag_logging&enable=0") == (200, {"ok": True, "diag_logging_s": 0})
    n = call(port, "cmd=get_log")[1]["count"]
    call(port, "cmd=get_params")
    assert not [l for l in call(port, "cmd=get_log&since=%d" % n)[1]["lines"] if l[2] == "DEBUG"]
    assert call(port, "cmd=get_status")[1]["diag_logging_s"] == 0
    st, ans = call(port, "cmd=set_diag_logging&enable=2")
    assert st == 400 and "enable must be 1 (start) or 0 (stop)" in ans["error"]


def test_ocpp_list_commands_without_ocpp_answer_an_error_and_import_nothing(box):
    fw, port = box
    for q in ("cmd=ocpp_list_get", "cmd=ocpp_list_delete&id=X", "cmd=ocpp_list_clear"):
        st, ans = call(port, q)
        assert st == 400 and "OCPP is not configured" in ans["error"]
    assert not [m for m in fw.ctl("modules") if m.startswith("loadpilot.ocpp")]


def test_the_ocpp_local_list_is_read_searched_and_deleted(tmp_path):
    from ocpp.v16 import call as ocall
    backend = Backend(interval=30).start()
    port = free_port()
    cfg = {"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "http_port": port, "ocpp_client_id": "CP1",
           "ocpp_url": "ws://127.0.0.1:%d/ocpp" % backend.port, "ocpp_ws_ping_s": 0}
    fw = Firmware(fs_dir=str(tmp_path), config=cfg).start()
    try:
        assert wait_for(lambda: fw.ctl("ocpp")["boot"] == "Accepted", 15)
        fw.wait_port(port)
        ok = {"status": "Accepted"}
        r = backend.call(ocall.SendLocalList(list_version=7, update_type="Full", local_authorization_list=[
            {"id_tag": "AABBCCDD", "id_tag_info": {"status": "Accepted", "expiry_date": "2099-01-31T00:00:00Z",
                                                    "parent_id_tag": "FLEET1"}},
            {"id_tag": "0BADBAD0", "id_tag_info": {"status": "Blocked"}},
            {"id_tag": "0DDDDDD0", "id_tag_info": {"status": "Accepted", "expiry_date": "2025-06-01T00:00:00Z"}},
            {"id_tag": "11111111", "id_tag_info": ok}] + [{"id_tag": "T%02d" % i, "id_tag_info": ok} for i in range(40)]))
        assert r.status == "Accepted"
        st, got = call(port, "cmd=ocpp_list_get")
        assert st == 200 and got["version"] == 7 and got["entries"] == 44 and got["enabled"] is True
        assert len(got["ids"]) == 44 and got["next"] is None
        first = {e["id"]: e for e in got["ids"]}
        assert first["AABBCCDD"] == {"id": "AABBCCDD", "status": "Accepted", "expiry": "2099-01-31T00:00:00Z",
                                     "parent": "FLEET1"}
        assert first["0BADBAD0"] == {"id": "0BADBAD0", "status": "Blocked", "expiry": None, "parent": None}
        # an Accepted entry past its expiryDate counts as Expired, and is shown so
        assert first["0DDDDDD0"]["status"] == "Expired"
        page = call(port, "cmd=ocpp_list_get&q=t&n=10&offset=10")[1]
        assert page["found"] == 40 and [e["id"] for e in page["ids"]] == ["T%02d" % i for i in range(10, 20)]
        assert page["next"] == 20
        assert call(port, "cmd=ocpp_list_get&q=aabb")[1]["ids"][0]["id"] == "AABBCCDD"
        st, ans = call(port, "cmd=ocpp_list_get&offset=x")
        assert st == 400 and "offset must be an integer" in ans["error"]
        # deleting one: gone, and the version the backend reads is 0, so it sends the list again
        assert call(port, "cmd=ocpp_list_delete&id=0BADBAD0") == (200, {"ok": True, "entries": 43, "version": 0})
        st, ans = call(port, "cmd=ocpp_list_delete&id=0BADBAD0")
        assert st == 400 and "not on the OCPP local list" in ans["error"]
        assert backend.call(ocall.GetLocalListVersion()).list_version == 0
        assert "0BADBAD0" not in [e["id"] for e in call(port, "cmd=ocpp_list_get")[1]["ids"]]
        # the backend resends in full: version and entries are its own again
        r = backend.call(ocall.SendLocalList(list_version=8, update_type="Full", local_authorization_list=[
            {"id_tag": "AABBCCDD", "id_tag_info": ok}, {"id_tag": "22222222", "id_tag_info": ok}]))
        assert r.status == "Accepted"
        assert call(port, "cmd=ocpp_list_get")[1]["version"] == 8
        assert call(port, "cmd=ocpp_list_clear") == (200, {"ok": True, "deleted": 2, "version": 0})
        assert call(port, "cmd=ocpp_list_get")[1]["entries"] == 0
        assert backend.call(ocall.GetLocalListVersion()).list_version == 0
        fw.stop()  # the cleared list holds after a reboot
        fw = Firmware(fs_dir=str(tmp_path)).start()
        fw.wait_port(port)
        assert call(port, "cmd=ocpp_list_get")[1]["entries"] == 0
    finally:
        fw.stop()
        backend.stop()


def test_diag_logging_ends_by_itself_after_its_time():
    """The 5 minutes, shortened to 1 s on the binary: the levels go back to what they were, DEBUG lines stop."""
    import subprocess
    from firmware_proc import FIRMWARE, micropython_binary
    script = """
import asyncio
from loadpilot.log import Log, INFO, DEBUG
from loadpilot.api import system_cmd
log = Log(console_level=100)
log.level = INFO
class App: pass
app = App(); app.log = log
system_cmd.DIAG_S = 1
s = system_cmd.SystemCommands(app)
async def main():
    r = s._set_diag_logging({"enable": "1"}, None)
    log.debug("t", "while on")
    on = (log.level, r["diag_logging_s"])
    await asyncio.sleep_ms(1300)
    log.debug("t", "after")
    print(on == (DEBUG, 1), log.level == INFO, log.console_level == 100, s._diag_left(),
          [l[3] for l in log.lines() if l[1] == "DEBUG"])
asyncio.run(main())
"""
    out = subprocess.run([micropython_binary(), "-c", script], cwd=FIRMWARE, capture_output=True, text=True,
                         timeout=20)
    assert out.stdout.strip().splitlines()[-1] == "True True True 0 ['while on']", out.stdout + out.stderr
    assert "DEBUG t: while on" in out.stdout and "DEBUG t: after" not in out.stdout  # the console too
