"""The TLS-session budget on the MicroPython binary: a board file declares how many TLS sessions it holds
(tls_sessions: each about 20-25 KB outside the GC heap), and the configuration store refuses a setting (control
socket config_set, the installer's config.json) that would hold more, naming the settings that take them."""
import json
import os

import pytest

from firmware_proc import BOARDS, Firmware

pytestmark = pytest.mark.mp


def tls_board(tmp_path, sessions):
    """unix_sim with the TLS figure of a small board (esp32_devkit holds 1)."""
    with open(os.path.join(BOARDS, "unix_sim.json")) as f:
        b = json.load(f)
    b["name"] = "unix_sim_%d_tls" % sessions
    b["tls_sessions"] = sessions
    path = tmp_path / ("board_tls%d.json" % sessions)
    path.write_text(json.dumps(b))
    return str(path)


def test_a_second_mqtts_broker_past_the_board_sessions_is_refused_and_changes_nothing(tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    with Firmware(board=tls_board(tmp_path, 1), fs_dir=str(fs)) as fw:
        # one mqtts:// broker: one session, within the board's one
        assert fw.ctl("config_set", key="mqtt_api_url", value="mqtts://u:hunter2@127.0.0.1:1") == ["mqtt_api_url"]
        # another feature on the same broker shares its connection and its session
        assert fw.ctl("config_set", key="mqtt_dev_info_url", value="mqtts://u:hunter2@127.0.0.1:1") \
            == ["mqtt_dev_info_url"]
        # plain mqtt:// takes no session
        assert fw.ctl("config_set", key="mqtt_ta_log_url", value="mqtt://127.0.0.1:3") == ["mqtt_ta_log_url"]
        with pytest.raises(RuntimeError) as e:
            fw.ctl("config_set", values={"title": "car park", "mqtt_log_url": "mqtts://127.0.0.1:2"})
        msg = str(e.value)
        assert "mqtt_log_url: the configuration would hold 2 TLS sessions at once, board unix_sim_1_tls has room " \
               "for 1" in msg
        assert "mqtts:// broker of mqtt_api_url, mqtt_dev_info_url: 1; mqtts:// broker of mqtt_log_url: 1" in msg
        assert "hunter2" not in msg
        v = fw.ctl("config_get")["values"]
        assert v["title"] == "LoadPilot" and v["mqtt_log_url"] == ""
        # a device pushing over its own mqtts:// broker takes a session too
        dev = {"dev_id": "M1", "driver": "http_input", "address": "mqtts://127.0.0.1:4", "role": 3}
        with pytest.raises(RuntimeError) as e:
            fw.ctl("config_set", key="devices", value=[dev])
        assert "devices: the configuration would hold 2 TLS sessions" in str(e.value)
        assert "mqtts:// broker of M1: 1" in str(e.value)
        assert fw.ctl("config_get", key="devices") == []
        # moving the API off TLS frees the session for the device's broker
        assert fw.ctl("config_set", values={"mqtt_api_url": "mqtt://127.0.0.1:1", "mqtt_dev_info_url": ""})
        assert fw.ctl("config_set", key="devices", value=[dev]) == ["devices"]


def test_an_installer_file_past_the_board_sessions_is_rejected_at_boot(tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    (fs / "config.json").write_text(json.dumps({"title": "garage", "mqtt_api_url": "mqtts://127.0.0.1:1"}))
    with Firmware(board=tls_board(tmp_path, 0), fs_dir=str(fs)) as fw:
        assert fw.wait_output("config.json rejected: mqtt_api_url: the configuration would hold 1 TLS sessions at "
                              "once, board unix_sim_0_tls has room for 0")
        assert fw.ctl("config_get", key="title") == "LoadPilot"
    assert sorted(os.listdir(str(fs)))[:1] == ["config.json.bad"]
