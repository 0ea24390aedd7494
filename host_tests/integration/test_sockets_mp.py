"""The socket budget on the MicroPython binary: a board file declares its lwIP sockets, the firmware refuses a
setting (control socket config_set, the installer's config.json) that would need more, and sizes its Modbus TCP
servers' admission (max_clients / max_pending) from what the rest of the configuration leaves."""
import json
import os
import socket
import struct
import time

import pytest

from firmware_proc import BOARDS, Firmware, free_port, wait_for

pytestmark = pytest.mark.mp


def small_board(tmp_path, sockets):
    """unix_sim with the socket count of a small board (a stock ESP32 has 10)."""
    with open(os.path.join(BOARDS, "unix_sim.json")) as f:
        b = json.load(f)
    b["name"] = "unix_sim_%d_sockets" % sockets
    b["sockets"] = sockets
    path = tmp_path / ("board%d.json" % sockets)
    path.write_text(json.dumps(b))
    return str(path)


def meters(n):
    return [{"dev_id": "M%d" % i, "driver": "meter_sdm630", "address": "127.0.0.%d:%d" % (10 + i, 1502)}
            for i in range(1, n + 1)]


def test_a_setting_past_the_board_budget_is_refused_over_the_control_socket_and_changes_nothing(tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    with Firmware(board=small_board(tmp_path, 10), fs_dir=str(fs)) as fw:
        view = fw.ctl("sockets")
        assert (view["budget"], view["need"]) == (10, 3)  # SunSpec: listener, a client, a waiting connection
        assert view["servers"] == [{"setting": "modbus_tcp_port", "port": fw.sunspec_port, "max_clients": 4,
                                    "max_pending": 4}]
        # 8 Modbus TCP hosts: 6 keep a connection, 2 connect per poll on the tenth socket
        assert fw.ctl("config_set", key="devices", value=meters(8)) == ["devices"]
        view = fw.ctl("sockets")
        assert (view["need"], view["tcp_devices_connected"]) == (10, 6)
        assert view["servers"][0]["max_clients"] == 1 and view["servers"][0]["max_pending"] == 1
        with pytest.raises(RuntimeError) as e:
            fw.ctl("config_set", values={"title": "car park", "omcci_tcp_port": free_port(),
                                         "mqtt_api_url": "mqtt://u:hunter2@127.0.0.1:1",
                                         "mqtt_log_url": "mqtt://127.0.0.1:2", "mqtt_ta_log_url": "mqtt://127.0.0.1:3",
                                         "mqtt_dev_info_url": "mqtt://127.0.0.1:4"})
        msg = str(e.value)
        assert "omcci_tcp_port: the configuration would need 11 sockets, board unix_sim_10_sockets has 10" in msg
        assert "modbus_tcp_port %d (listener, clients, waiting): 3" % fw.sunspec_port in msg
        assert "MQTT broker of mqtt_api_url: 1" in msg and "hunter2" not in msg
        assert "Modbus TCP devices M1, M2, M3, M4, M5, M6, M7, M8 (8 host:port: 0 connected, 8 per poll on 1 " \
               "shared socket): 1" in msg
        v = fw.ctl("config_get")["values"]
        assert v["title"] == "LoadPilot" and v["omcci_tcp_port"] == 0 and v["mqtt_api_url"] == ""
        with pytest.raises(RuntimeError) as e:
            fw.ctl("config_set", key="pb_tcp_port", value=free_port())  # the PB port and its 2 S0 ports: 9 more
        assert "pb_tcp_port: the configuration would need 13 sockets" in str(e.value)
        assert fw.ctl("config_get", key="pb_tcp_port") == 0


def test_an_installer_file_past_the_budget_is_rejected_at_boot(tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()  # 2 servers (6) and 2 brokers on an 8-socket board: no socket left for the devices
    (fs / "config.json").write_text(json.dumps({"modbus_tcp_port": free_port(), "pb_tcp_port": 0,
                                                "omcci_tcp_port": free_port(), "mqtt_api_url": "mqtt://127.0.0.1:1",
                                                "mqtt_log_url": "mqtt://127.0.0.1:2", "devices": meters(9)}))
    with Firmware(board=small_board(tmp_path, 8), fs_dir=str(fs)) as fw:
        assert fw.wait_output("config.json rejected: modbus_tcp_port: the configuration would need 9 sockets, board "
                              "unix_sim_8_sockets has 8")
        assert fw.ctl("config_get", key="devices") == []
        # the defaults stay, and on this board they are over budget too (4 servers): the boot says so
        assert fw.wait_output("sockets: the configuration would need 12 sockets")
    assert sorted(os.listdir(str(fs)))[:1] == ["config.json.bad"]


def _read_request(sock, tid):
    sock.sendall(struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, 40000, 2))  # SunSpec "SunS" at 40000
    head = sock.recv(64)
    assert head[:2] == struct.pack(">H", tid) and head[7] == 3, head


def _closed(sock):
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def test_the_modbus_tcp_server_admits_as_many_clients_as_the_budget_leaves(tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    # 6 sockets: the SunSpec server needs 3, the 3 spare go to a second client, a second waiting place and a
    # third client: max_clients 3
    with Firmware(board=small_board(tmp_path, 6), fs_dir=str(fs)) as fw:
        assert fw.ctl("sockets")["servers"][0]["max_clients"] == 3
        fw.wait_port(fw.sunspec_port)
        clients = []
        for i in range(3):
            s = socket.create_connection(("127.0.0.1", fw.sunspec_port), timeout=2)
            _read_request(s, i + 1)
            clients.append(s)
            time.sleep(0.05)  # the first client is the longest idle
        for s in clients:
            s.settimeout(0.3)
            assert not _closed(s)
        fourth = socket.create_connection(("127.0.0.1", fw.sunspec_port), timeout=2)
        _read_request(fourth, 9)  # served: it took the slot of the longest-idle client
        clients[0].settimeout(2)
        assert wait_for(lambda: _closed(clients[0]), timeout=3)
        for s in clients[1:]:
            assert not _closed(s)
        for s in clients + [fourth]:
            s.close()


def test_tcp_devices_past_the_budget_are_polled_per_poll_on_one_socket(tmp_path):
    # two OMCCI stations at two host:ports on a 4-socket board: the SunSpec server takes 3, so both stations
    # take turns on the fourth, and both are read
    import ptybus
    from test_devices_mp import Peers
    ptys = [ptybus.PtyPair(), ptybus.PtyPair()]
    ports = [free_port(), free_port()]
    peers = [Peers(ptys[i].peer, 0, ports[i]) for i in range(2)]
    fs = tmp_path / "fs"
    fs.mkdir()
    cfg = {"modbus_tcp_port": free_port(), "pb_tcp_port": 0,
           "devices": [{"dev_id": "E%d" % (i + 2), "driver": "evse_omcci", "address": "127.0.0.1:%d" % p, "id": 1}
                       for i, p in enumerate(ports)]}
    try:
        with Firmware(board=small_board(tmp_path, 4), fs_dir=str(fs), config=cfg) as fw:
            view = fw.ctl("sockets")
            assert (view["need"], view["tcp_devices_connected"]) == (4, 0)

            def both_read():
                comm = {d["dev_id"]: d for d in fw.status()["device_comm"]}
                ok = all(comm.get(k, {}).get("import_wh") == 4242 and comm[k]["com_err"] is False
                         for k in ("E2", "E3"))
                return ok and comm
            comm = wait_for(both_read, timeout=20)
            assert comm, fw.status()["device_comm"]
            assert comm["E2"]["state"] == 3 and comm["E3"]["state"] == 3
            assert fw.ctl("config_set", key="title", value="still answering") == ["title"]
    finally:
        for p in peers:
            p.stop()
        for b in ptys:
            b.close()
