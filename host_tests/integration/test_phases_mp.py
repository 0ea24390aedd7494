"""1p/3p switching of Power Brain slaves on the MicroPython binary: the whole app as RTU master of a pty bus with
pymodbus wallboxes, and paho publishing MQTT ctl through mosquitto (observation mode)."""
import json
import time

import pytest

import ptybus
from firmware_proc import Firmware, free_port, wait_for
from mqtt_peers import Mosquitto, Observer
from site_rig import METER, SiteRig, f32_words
from test_devices_mp import Peers

pytestmark = pytest.mark.mp
COM = "COM1,19200,8,n,1"
R = "cfos_mqtt"


def params(obs):
    """get_params through MQTT api/ -> api_res (the volatile set-points ctl stored)."""
    n = len(obs.messages)
    obs.publish(R + "/api/cmd=get_params", "", qos=1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        m = obs.wait(R + "/api_res", timeout=max(0.1, deadline - time.monotonic()))
        if obs.messages.index(m) >= n:
            return json.loads(m[1])
        obs.messages.remove(m)
    return {}


def test_ctl_phs_reaches_8087_of_a_remote_box_once_per_interval(tmp_path):
    bus = ptybus.PtyPair()
    peers = Peers(bus.peer, 2, 0, switchable=(1,))  # unit 1 (E2) may switch while plugged in, unit 2 (E3) not
    broker = Mosquitto().start()
    url = "mqtt://127.0.0.1:%d" % broker.port
    devices = [{"dev_id": "E2", "driver": "evse_powerbrain", "address": COM, "id": 1},
               {"dev_id": "E3", "driver": "evse_powerbrain", "address": COM, "id": 2}]
    fw = Firmware(fs_dir=str(tmp_path), env={"LOADPILOT_UART_RS485_1": bus.fw},
                  config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "mqtt_url": url,
                          "mqtt_api_url": "mqtt", "mqtt_ctl_enabled": True, "lb_enabled": False,
                          "devices": devices})
    obs = None
    try:
        fw.start()
        obs = Observer(broker.port)
        comm = lambda: {d["dev_id"]: d for d in fw.status()["device_comm"]}  # noqa: E731
        assert wait_for(lambda: comm()["E2"].get("can_switch_phases") is True and comm()["E2"]["phases"] == 3
                        and comm()["E3"].get("can_switch_phases") is False, timeout=20), comm()
        # ctl needs the firmware subscribed: repeat the (idempotent) message until it lands
        assert wait_for(lambda: obs.publish(R + "/ctl", json.dumps({"E2": {"phs": 1}, "E3": {"phs": 1}}), qos=1)
                        or peers.get(1, 8087) == [1], timeout=20, step=0.5)
        assert wait_for(lambda: comm()["E2"]["phases"] == 1, timeout=10)  # read back into the Site
        assert peers.get(1, 8093, 2) == [160, 1]  # phs alone: the box's current and enable were not touched
        assert peers.get(2, 8087) == [0]  # E3 does not report bit 8: never switched
        # back to 3 phases at once: the switch waits for the minimum interval (5 min), nothing chatters
        obs.publish(R + "/ctl", json.dumps({"E2": {"phs": 3}}), qos=1)
        assert wait_for(lambda: params(obs).get("setpoint.E2.phs") == 3), "ctl phs 3 not taken"
        time.sleep(5)  # a few manager cycles (2 s) and bus cycles
        assert peers.get(1, 8087) == [1]
        assert comm()["E2"]["phase_writes"] == 1 and comm()["E3"]["phase_writes"] == 0
    finally:
        if obs is not None:
            obs.close()
        fw.stop()
        broker.close()
        peers.stop()
        bus.close()


# The manager's phase_down_delay_ms is 60 s on the board and no setting: the test boots the firmware with it at
# 10 s (the firmware's own Params and allocation, run through mp_patched_main.py) instead of sitting out a minute.
DOWN_DELAY_MS = 10000
SHORT_DOWN_DELAY = """
from loadpilot.manager import model
_init = model.Params.__init__
def _short(self):
    _init(self)
    self.phase_down_delay_ms = %d
model.Params.__init__ = _short
""" % DOWN_DELAY_MS


def test_the_managers_phase_wish_reaches_a_charging_slave(tmp_path):
    """Load management on, a grid meter: L2 and L3 are nearly full, so the 3-phase car on E2 cannot get its
    minimum there but would on L1 alone. After the manager's phase_down_delay_ms its 1-phase wish goes to 8087
    of the box, which reports (8113 bit 8) that it switches while plugged in by itself."""
    rig = SiteRig(n_boxes=1, tmp_dir=str(tmp_path), switchable=(1,), patch=SHORT_DOWN_DELAY)
    try:
        for i, amps in enumerate((10.0, 31.0, 31.0)):  # the box itself draws 1 A per phase of that
            rig.peers.cmd(op="set", unit=METER, addr=6 + 2 * i, values=f32_words(amps), fc=4)
        assert rig.wait(lambda: rig.device("E2").get("reason") == "fuse", timeout=20), rig.device("E2")
        short = time.monotonic()  # the wish starts with the shortage (at most this late)
        assert rig.wait(lambda: rig.offered_ma(1) == 0) and rig.peers.get(1, 8087) == [0]  # paused at 3 phases
        # the wish holds for the delay, then it is written; the box reads back 1 phase and gets current on L1
        assert rig.wait(lambda: rig.peers.get(1, 8087) == [1], timeout=DOWN_DELAY_MS / 1000 + 20, step=0.2), \
            rig.device("E2")
        held = time.monotonic() - short
        assert held >= DOWN_DELAY_MS / 2000, held  # not before the delay (half of it: slack for a slow poll)
        print("1-phase wish written %.1f s after the shortage was seen" % held)
        assert rig.wait(lambda: rig.offered_ma(1) >= 6000, timeout=20), rig.device("E2")
        comm = {d["dev_id"]: d for d in rig.fw.status()["device_comm"]}["E2"]
        assert comm["phases"] == 1 and comm["phase_writes"] == 1
    finally:
        rig.close()
