"""The device layer on the real MicroPython binary: RTU master on a pty bus with 10 simulated Power Brain
wallboxes and an SDM630 grid meter (pymodbus), and an OMCCI station over Modbus TCP (pymodbus)."""
import json
import os
import subprocess
import sys
import time

import pytest

import firmware_proc
import ptybus

pytestmark = pytest.mark.mp
HERE = os.path.dirname(os.path.abspath(__file__))
COM = "COM1,19200,8,n,1"
N_BOXES = 10


class Peers:
    def __init__(self, pty, n_boxes, tcp_port, switchable=()):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "pymodbus_site_peers.py"), pty, "19200",
                                      str(n_boxes), str(tcp_port), ",".join(map(str, switchable))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        ptybus.wait_line(self.proc, "peers ready")

    def cmd(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return json.loads(ptybus.wait_line(self.proc, "{", timeout=10))

    def get(self, unit, addr, count=1, tcp=False):
        return self.cmd(op="get", unit=unit, addr=addr, count=count, tcp=tcp)["values"]

    def stop(self):
        ptybus.stop(self.proc)


def devices(n_boxes, tcp_port):
    devs = [{"dev_id": "M1", "driver": "meter_sdm630", "address": COM, "id": 100, "role": 3}]
    for u in range(1, n_boxes + 1):
        devs.append({"dev_id": "E%d" % (u + 1), "driver": "evse_powerbrain", "address": COM, "id": u})
    if tcp_port:
        devs.append({"dev_id": "E20", "driver": "evse_omcci", "address": "127.0.0.1:%d" % tcp_port, "id": 1,
                     "fail_safe_current": 7000, "fail_safe_secs": 90})
    devs.append({"dev_id": "E1", "driver": "evse_powerbrain", "address": "evse"})  # the local box: not polled
    return devs


def next_view(fw, timeout=15):
    line = ptybus.wait_line(fw, "VIEW ", timeout)
    v = json.loads(line[line.index("VIEW ") + 5:])
    v["by_id"] = {d["dev_id"]: d for d in v["devices"]}
    return v


def wait_view(fw, pred, timeout=20):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = next_view(fw)
        if pred(last["by_id"]):
            return last
    raise AssertionError("condition not met; last view: %s" % json.dumps(last)[:3000])


@pytest.fixture(scope="module")
def site():
    bus = ptybus.PtyPair()
    tcp_port = firmware_proc.free_port()
    peers = Peers(bus.peer, N_BOXES, tcp_port)
    setpoints = {"E%d" % (u + 1): [True, 6000 + 1000 * u, 3] for u in range(1, N_BOXES + 1)}
    setpoints["E20"] = [True, 11000, 3]
    fw = ptybus.start_micropython(open(os.path.join(HERE, "mp_device_layer.py")).read(), bus.fw,
                                  {"devices": devices(N_BOXES, tcp_port), "setpoints": setpoints, "every_ms": 300})
    try:
        yield fw, peers
    finally:
        ptybus.stop(fw)
        peers.stop()
        bus.close()


def all_read(by_id):
    return len(by_id) == N_BOXES + 2 and all(d.get("state") == 3 or d["dev_id"] == "M1" for d in by_id.values()) \
        and by_id["M1"]["power_w"] != 0


def test_readings_arrive_from_every_device(site):
    fw, peers = site
    v = wait_view(fw, all_read)["by_id"]
    assert "E1" not in v  # the local charge point is not a bus device
    m = v["M1"]
    assert m["current_ma"] == [10000, 5500, -2000]  # L3 exports
    assert m["voltage_v"] == [230, 231, 229]
    assert m["power_w"] == 3112 or m["power_w"] == 3113
    assert m["import_wh"] == 4321000 and m["export_wh"] == 12500
    for u in range(1, N_BOXES + 1):
        b = v["E%d" % (u + 1)]
        assert b["current_ma"] == [u * 1000] * 3
        assert b["import_wh"] == u * 1000 and b["power_w"] == u * 100
        assert b["com_err"] is False and b["has_meter"] is True and b["fail_safe_s"] == 300
    o = v["E20"]
    assert o["current_ma"] == [6000, 6000, 6000] and o["import_wh"] == 4242 and o["voltage_v"] == [230] * 3


def test_setpoints_are_written_into_the_slaves(site):
    fw, peers = site
    wait_view(fw, lambda d: all(d.get("E%d" % (u + 1), {}).get("setpoint_writes") for u in range(1, N_BOXES + 1))
              and d.get("E20", {}).get("setpoint_writes"))
    for u in range(1, N_BOXES + 1):
        assert peers.get(u, 8093, 2) == [60 + 10 * u, 1]  # 0.1 A, enabled
    assert peers.get(1, 1000, tcp=True) == [11]      # HEMS limit in A
    assert peers.get(1, 131, 2, tcp=True) == [7, 90]  # safe current (A) and comm timeout (s) on contact


def test_a_silent_wallbox_goes_offline_and_rejoins(site):
    fw, peers = site
    wait_view(fw, all_read)
    peers.cmd(op="silence", unit=4)
    v = wait_view(fw, lambda d: d["E5"]["com_err"])["by_id"]
    assert v["E5"]["state"] == 6 and v["E5"]["com_errors"] >= 1 and "no answer" in v["E5"]["last_error"]
    assert v["E4"]["com_err"] is False and v["E6"]["com_err"] is False
    # the others keep being read while E5 is silent
    peers.cmd(op="set", unit=5, addr=8092, values=[1])
    wait_view(fw, lambda d: d["E6"]["state"] == 2)
    peers.cmd(op="set", unit=4, addr=8093, values=[0])  # it restarts without its set-point
    peers.cmd(op="wake", unit=4)
    v = wait_view(fw, lambda d: not d["E5"]["com_err"] and d["E5"]["state"] == 3)["by_id"]
    assert v["E5"]["com_err_secs"] < 60
    wait_view(fw, lambda d: True)
    deadline = time.monotonic() + 10
    while peers.get(4, 8093)[0] != 100 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert peers.get(4, 8093) == [100]  # the set-point is sent again on the new contact


def test_the_app_polls_configured_devices_and_shows_their_comm_state():
    bus = ptybus.PtyPair()
    tcp_port = firmware_proc.free_port()
    peers = Peers(bus.peer, 0, tcp_port)
    sunspec_port = firmware_proc.free_port()
    cfg = {"modbus_tcp_port": sunspec_port, "pb_tcp_port": 0,
           "devices": [{"dev_id": "E2", "driver": "evse_omcci", "address": "127.0.0.1:%d" % tcp_port, "id": 1},
                       {"dev_id": "E3", "driver": "evse_omcci", "address": "127.0.0.1:%d" % firmware_proc.free_port(),
                        "id": 1},
                       # the box's own SunSpec server: its first model 213 is the grid total, which is the
                       # grid meter M2 whose readings are pushed below
                       {"dev_id": "M1", "driver": "meter_sunspec", "address": "127.0.0.1:%d" % sunspec_port,
                        "id": 1, "role": 0},
                       {"dev_id": "M2", "driver": "http_input", "address": "", "role": 3}]}
    try:
        with firmware_proc.Firmware(config=cfg) as fw:
            grid = {"current_ma": [16000, -2000, 3000], "voltage_v": [232, 231, 229], "import_wh": 555000,
                    "export_wh": 66000, "power_w": 3000}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                fw.ctl("site", readings={"M2": grid})
                comm = {d["dev_id"]: d for d in fw.status()["device_comm"]}
                if comm.get("E2", {}).get("import_wh") == 4242 and comm.get("E3", {}).get("com_err") \
                        and comm.get("M1", {}).get("import_wh") == 555000:
                    break
                time.sleep(0.3)
            m1 = comm["M1"]
            assert m1["com_err"] is False and m1["sunspec_model"] == 213, m1
            assert m1["current_ma"] == [16000, -2000, 3000] and m1["voltage_v"] == [232, 231, 229], m1
            assert m1["export_wh"] == 66000, m1
            assert comm["E2"]["com_err"] is False and comm["E2"]["state"] == 3, comm
            assert comm["E3"]["com_err"] is True and comm["E3"]["state"] == 6 and comm["E3"]["last_error"], comm
            tasks = fw.status()["tasks"]
            assert any("dev_tcp_127.0.0.1" in str(t) for t in (tasks if isinstance(tasks, list) else tasks.keys()))
    finally:
        peers.stop()
        bus.close()


@pytest.mark.parametrize("sunspec", [True, False])
def test_a_changed_device_list_is_polled_without_a_reboot(sunspec):
    bus = ptybus.PtyPair()
    port_a, port_b = firmware_proc.free_port(), firmware_proc.free_port()
    peers_a = Peers(bus.peer, 0, port_a)  # the SDM630 (unit 100) on the pty, an OMCCI station on TCP
    peers_b = Peers(ptybus.PtyPair().peer, 0, port_b)
    meter = {"dev_id": "M1", "driver": "meter_sdm630", "address": COM, "id": 100, "role": 0}
    first = [meter, {"dev_id": "E2", "driver": "evse_omcci", "address": "127.0.0.1:%d" % port_a, "id": 1}]
    second = [meter, {"dev_id": "E5", "driver": "evse_omcci", "address": "127.0.0.1:%d" % port_b, "id": 1,
                      "name": "new box"}]
    cfg = {"modbus_enabled": sunspec, "modbus_tcp_port": firmware_proc.free_port(), "pb_tcp_port": 0,
           "devices": first}
    try:
        with firmware_proc.Firmware(config=cfg, env={"LOADPILOT_UART_RS485_1": bus.fw}) as fw:
            def polled(ids):
                comm = {d["dev_id"]: d for d in fw.status()["device_comm"]}
                ok = sorted(comm) == sorted(ids) and all(comm[i]["com_err"] is False and comm[i]["import_wh"]
                                                         for i in ids)
                return comm if ok else None
            assert firmware_proc.wait_for(lambda: polled(["M1", "E2"]), 20), fw.status()["device_comm"]
            fw.ctl("config_set", key="devices", value=second)
            comm = firmware_proc.wait_for(lambda: polled(["M1", "E5"]), 20)
            assert comm, fw.status()["device_comm"]
            assert comm["E5"]["name"] == "new box" and comm["E5"]["import_wh"] == 4242, comm
            assert comm["M1"]["current_ma"] == [10000, 5500, -2000], comm  # the reopened RS485 bus still reads
            status = fw.status()
            # the board's own charge point is E1 when the list names no other
            assert sorted(d["dev_id"] for d in status["devices"]) == ["E1", "E5", "M1"], status["devices"]
            tasks = [t["name"] for t in status["tasks"]]
            assert not any(str(port_a) in t for t in tasks), tasks  # the old bus task is gone, not just idle
            assert any(str(port_b) in t for t in tasks) and "evse" in tasks, tasks
            seen = peers_a.cmd(op="requests")["tcp"]
            time.sleep(2.5)  # a TCP bus cycles once a second: the removed station would have had two more
            assert peers_a.cmd(op="requests")["tcp"] == seen
            assert peers_b.cmd(op="requests")["tcp"] > 0
            evse = [t for t in status["tasks"] if t["name"] == "evse"]
            assert evse[0]["state"] == "running" and evse[0]["restarts"] == 0, evse  # the charge point ran on
            if sunspec:  # the SunSpec server kept serving through the rebuild
                fw.wait_port(cfg["modbus_tcp_port"])
    finally:
        peers_a.stop()
        peers_b.stop()
        bus.close()


def test_phase_wish_reaches_8087_of_a_box_that_can_switch():
    """E2 (unit 1) reports 8113 bit 8, E3 (unit 2) does not: both are asked for 1 phase."""
    bus = ptybus.PtyPair()
    peers = Peers(bus.peer, 2, 0, switchable=(1,))
    devs = [{"dev_id": "E2", "driver": "evse_powerbrain", "address": COM, "id": 1},
            {"dev_id": "E3", "driver": "evse_powerbrain", "address": COM, "id": 2}]
    setpoints = {"E2": [True, 10000, 1], "E3": [True, 10000, 1]}
    fw = ptybus.start_micropython(open(os.path.join(HERE, "mp_device_layer.py")).read(), bus.fw,
                                  {"devices": devs, "setpoints": setpoints, "every_ms": 300})
    try:
        v = wait_view(fw, lambda d: d["E2"].get("phases") == 1 and d["E3"].get("setpoint_writes"))["by_id"]
        assert peers.get(1, 8087) == [1]  # written, and read back by the next poll
        assert v["E2"]["can_switch_phases"] is True and v["E2"]["phase_writes"] == 1
        assert peers.get(2, 8087) == [0]  # no bit 8: never written
        assert v["E3"]["can_switch_phases"] is False and v["E3"]["phase_writes"] == 0
        assert v["E3"]["phases"] == 3  # its configured phases
        assert peers.get(1, 8093, 2) == [100, 1] and peers.get(2, 8093, 2) == [100, 1]
        peers.cmd(op="set", unit=1, addr=8087, values=[0])  # someone else switched it back
        v = wait_view(fw, lambda d: d["E2"].get("phases") == 3)["by_id"]
        wait_view(fw, lambda d: True)
        # one write per wish and contact: the driver does not fight a switch made elsewhere (no chatter)
        assert peers.get(1, 8087) == [0] and v["E2"]["phase_writes"] == 1
    finally:
        ptybus.stop(fw)
        peers.stop()
        bus.close()
