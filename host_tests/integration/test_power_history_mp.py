"""The Dashboard plot's history on the box (firmware/loadpilot/power_history.py, docs/webui.md "The plot") on the
MicroPython binary: get_power_history over HTTP and MQTT api/ fills with the average of each step, holds at most
N samples and drops the oldest, answers only the newer ones with since=, saturates at the int16 range, shows null
for a meter that is not there, refuses a bad since, needs the login; with HTTP off nothing of it is imported.
The step is shortened before boot (Firmware's patch=): 1 s steps, 5 samples, manager cycles of 200 ms."""
import base64
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from firmware_proc import Firmware, free_port, wait_for
from mqtt_peers import Mosquitto, Observer
from test_mqtt_topics import api, wait_subscribed

pytestmark = pytest.mark.mp

FACTORY = "JuiCeMeUP!"
N = 5
PATCH = ("import loadpilot.manager_cycle as m; m.CYCLE_MS = 200\n"
         "import loadpilot.power_history as p; p.STEP_MS = 1000; p.N_SAMPLES = %d" % N)
DEVICES = [{"dev_id": "E2", "driver": "http_input", "address": "", "name": "Garage"},
           {"dev_id": "M1", "driver": "http_input", "address": "", "name": "Grid", "role": 3}]  # no PV meter


class Feeder:
    """Pushes the grid meter's power every 100 ms (a meter that keeps reporting) until told another figure."""

    def __init__(self, fw):
        self.fw = fw
        self.power_w = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            self.fw.ctl("site", readings={"M1": {"power_w": self.power_w, "current_ma": [1000, 1000, 1000]}})
            time.sleep(0.1)


@pytest.fixture(scope="module")
def env():
    broker = Mosquitto().start()
    port = free_port()
    fw = Firmware(config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "http_port": port, "devices": DEVICES,
                          "mqtt_url": "mqtt://127.0.0.1:%d" % broker.port, "mqtt_api_url": "mqtt"}, patch=PATCH)
    fw.start()
    feed = Feeder(fw)
    obs = Observer(broker.port)
    try:
        fw.wait_port(port)
        wait_subscribed(obs)
        yield fw, port, feed, obs
    finally:
        feed.stop.set()
        feed.t.join(2)
        obs.close()
        fw.stop()
        broker.close()


def get(port, query, pwd=FACTORY):
    h = {"Authorization": "Basic " + base64.b64encode(("operator:%s" % pwd).encode()).decode()} if pwd else {}
    req = urllib.request.Request("http://127.0.0.1:%d/cnf?%s" % (port, query), headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def history(port, since=None):
    status, body, headers = get(port, "cmd=get_power_history" + ("" if since is None else "&since=%d" % since))
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json") and int(headers["Content-Length"]) == len(body)
    return json.loads(body)


def hold(port, feed, power_w, samples=3):
    """Push power_w until `samples` whole steps have closed with it; -> the history answer then."""
    feed.power_w = power_w
    start = history(port)["next"] + 1  # the step open now may still hold the figure before
    return wait_for(lambda: (lambda h: h if h["next"] >= start + samples else None)(history(port)), timeout=15)


def test_the_history_fills_with_each_steps_average_and_nulls_for_the_missing_pv_meter(env):
    fw, port, feed, obs = env
    h = hold(port, feed, 4321)
    assert h["step_s"] == 1 and h["step_ms"] == 1000 and h["clock"] == 1  # the host's clock is set
    assert abs(h["end_s"] - time.time()) <= 3 and 0 <= h["age_ms"] <= 1500
    assert h["grid_w"][-2:] == [4320, 4320]  # 10 W steps
    assert h["pv_w"] == [None] * len(h["pv_w"])  # no generation meter: no PV figure, not a 0
    assert h["evse_w"][-1] == 0  # the wallbox is there and draws nothing
    assert len(h["grid_w"]) == len(h["pv_w"]) == len(h["evse_w"]) == h["next"] - h["first"]


def test_it_holds_n_samples_drops_the_oldest_and_since_gives_the_newer_ones(env):
    fw, port, feed, obs = env
    h = hold(port, feed, -2340, samples=N + 1)  # exporting: negative
    assert len(h["grid_w"]) == N and h["first"] == h["next"] - N  # the oldest are gone
    assert h["grid_w"][-3:] == [-2340] * 3
    newer = history(port, since=h["next"] - 2)
    assert newer["first"] == h["next"] - 2 and len(newer["grid_w"]) == newer["next"] - newer["first"]
    assert history(port, since=0)["first"] == history(port)["first"]  # a since older than the ring: all it has
    beyond = history(port, since=10 ** 6)
    assert beyond["grid_w"] == [] and beyond["first"] == beyond["next"]


def test_a_figure_beyond_int16_saturates_instead_of_wrapping(env):
    fw, port, feed, obs = env
    assert hold(port, feed, 500000)["grid_w"][-2:] == [327670, 327670]
    assert hold(port, feed, -500000)["grid_w"][-2:] == [-327670, -327670]


def test_bad_since_and_no_login_are_refused(env):
    fw, port, feed, obs = env
    status, body, _ = get(port, "cmd=get_power_history&since=-3")
    assert status == 400 and "since must be a sample number" in body
    status, body, _ = get(port, "cmd=get_power_history", pwd=None)
    assert status == 401


def test_the_same_answer_over_mqtt_api(env):
    fw, port, feed, obs = env
    h = hold(port, feed, 1500, samples=2)
    m = api(obs, "cmd=get_power_history&since=%d" % (h["next"] - 2))
    assert m["first"] == h["next"] - 2 and m["grid_w"][:2] == [1500, 1500] and m["pv_w"][:2] == [None, None]
    assert api(obs, "cmd=get_power_history&since=x")["error"]  # the command layer's error, as api_res


def test_http_off_imports_nothing_of_it():
    off = Firmware(config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "devices": DEVICES}).start()
    try:
        mods = off.ctl("modules")
        assert "loadpilot.manager_cycle" in mods and "loadpilot.power_history" not in mods
    finally:
        off.stop()
