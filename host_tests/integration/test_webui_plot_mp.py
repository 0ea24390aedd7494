"""The Dashboard's plot in headless Chromium (docs/webui.md "The plot"): a page opened after the box has run a
while starts with the box's history (get_power_history), not empty. The box takes a sample a second here (the
step shortened before boot with Firmware's patch=); the grid meter ramps up while PV stays, so the history has a
shape to see. A tab shown again after a gap fills it from the box. Screenshots: 1-plot-history.png and
2-plot-refilled.png in the shots directory (printed)."""
import os
import threading
import time

import pytest

from firmware_proc import Firmware, free_port, wait_for
from webui_driver import FACTORY, PAGE_TEST, by_id, click, set_value, shot, until, www

pytestmark = PAGE_TEST

PATCH = ("import loadpilot.manager_cycle as m; m.CYCLE_MS = 200\n"
         "import loadpilot.power_history as p; p.STEP_MS = 500")
DEVICES = [{"dev_id": "E2", "driver": "http_input", "address": "", "name": "Garage"},
           {"dev_id": "M1", "driver": "http_input", "address": "", "name": "Grid", "role": 3},
           {"dev_id": "M2", "driver": "http_input", "address": "", "name": "PV", "role": 2}]
HISTORY_S = 10


@pytest.fixture(scope="module")
def box():
    port = free_port()
    fw = Firmware(config={"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "http_port": port, "devices": DEVICES},
                  patch=PATCH)
    www.build(os.path.join(fw.fs_dir, "www"))
    fw.start()
    stop = threading.Event()

    def feed():  # the grid ramps from 0 to 8 kW over HISTORY_S, then stays; PV gives 2 kW throughout
        t0 = time.monotonic()
        while not stop.is_set():
            w = min(8000, int(8000 * (time.monotonic() - t0) / HISTORY_S))
            fw.ctl("site", readings={"M1": {"power_w": w, "current_ma": [w * 1000 // 690] * 3},
                                     "M2": {"power_w": -2000}})
            time.sleep(0.1)
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        fw.wait_port(port)
        yield fw, "http://127.0.0.1:%d/" % port
    finally:
        stop.set()
        t.join(2)
        fw.stop()


# the red of the grid line (app.js "#c0392b") in the canvas: -> (columns it covers, its highest and lowest row)
RED_SPAN = """
var c = document.getElementById("plot"), g = c.getContext("2d"), d = g.getImageData(0, 0, c.width, c.height).data;
var xs = {}, lo = 1e9, hi = -1;
for (var y = 0; y < c.height; y++) for (var x = 0; x < c.width; x++) {
  var i = 4 * (y * c.width + x);
  if (Math.abs(d[i] - 0xc0) < 24 && Math.abs(d[i + 1] - 0x39) < 24 && Math.abs(d[i + 2] - 0x2b) < 24 && d[i + 3] > 200) {
    xs[x] = 1; lo = Math.min(lo, y); hi = Math.max(hi, y);
  }
}
return [Object.keys(xs).length, c.width, lo, hi];
"""


def test_a_freshly_opened_dashboard_shows_the_last_minutes_from_the_box(box, browser):
    fw, url = box
    d = browser
    time.sleep(HISTORY_S + 2)  # the box runs while no page is open
    d.get(url)
    until(d, lambda: by_id(d, "login").is_displayed())
    set_value(by_id(d, "login").find_element("name", "pwd"), FACTORY)
    click(d, by_id(d, "login-btn"))
    opened = time.monotonic()
    note = until(d, lambda: "points from the box" in by_id(d, "plot-note").text and by_id(d, "plot-note").text)
    n = int(note.split(" points")[0])
    assert n >= HISTORY_S, note  # every second since boot, not only what this page has polled
    cols, width, top, bottom = until(d, lambda: (lambda r: r if r[0] else None)(d.execute_script(RED_SPAN)))
    assert time.monotonic() - opened < 3  # before the live polls alone could draw this much
    assert cols > width // 2, (cols, width)  # the grid line crosses the plot from its left part
    assert bottom - top > 60, (top, bottom)  # and rises: the ramp from 0 to 8 kW
    shot(d, "1-plot-history")
    wait_for(lambda: "Grid now" in by_id(d, "budget").text)


def test_a_tab_shown_again_after_a_gap_refills_the_plot_from_the_box(box, browser):
    """Hidden tabs poll seldom: when the page is shown again and its newest point is over a minute old, the
    minutes come from the box again. The gap is made by dropping the page's points after the first three and
    aging those by two minutes (as a tab hidden that long would have them)."""
    fw, url = box
    d = browser
    before = d.execute_script("return S.hist.length")
    assert before > HISTORY_S
    d.execute_script("S.hist = S.hist.slice(0, 3).map(function (p) { return [p[0] - 120000].concat(p.slice(1)); });"
                     "document.dispatchEvent(new Event('visibilitychange'));")
    after = until(d, lambda: (lambda n: n if n >= before else None)(d.execute_script("return S.hist.length")))
    assert after >= before
    first = d.execute_script("return S.hist[0][0]")
    # the box's samples (since its boot, under a minute ago) took the place of the points aged two minutes
    assert d.execute_script("return Date.now()") - first < 100000
    shot(d, "2-plot-refilled")
