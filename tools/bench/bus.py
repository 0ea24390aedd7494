"""Device-layer bus cycle: the firmware's DeviceLayer on the MicroPython unix binary as RTU master for 25
simulated Power Brain wallboxes and an SDM630 grid meter (pymodbus, one process) at 19200 8N1 on a socat pty.

    .venv/bin/python tools/bench/bus.py

Prints, per run:
  measured     full bus cycle on the pty (median and worst over the measured cycles). A pty does not pace
               bytes at the baud rate, so this is the processing cost of both ends (our master + pymodbus),
               not wire time;
  wire minimum the time the same frames need on a real 19200 baud line: request + answer characters of
               every exchange of a steady-state cycle, plus one t3.5 silence before each frame (computed from
               the drivers' own register counts);
  estimate     wire minimum + measured (a real slave's turnaround stands in for pymodbus' processing);
and the bar: a full cycle within 3000 ms.
"""
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTEGRATION = os.path.join(ROOT, "host_tests", "integration")
sys.path[:0] = [INTEGRATION, os.path.join(ROOT, "host_tests"), os.path.join(ROOT, "firmware")]

import mpshim  # noqa: E402

mpshim.install()
import ptybus  # noqa: E402
from loadpilot.devices import evse_powerbrain as pb  # noqa: E402
from loadpilot.devices.meter_tables import TABLES  # noqa: E402
from loadpilot.modbus import serial_settings  # noqa: E402
from test_devices_mp import Peers, devices  # noqa: E402

COM = "COM1,19200,8,n,1"
N_BOXES = 25
WARM_CYCLES = 3
MEASURED_CYCLES = 10
BAR_MS = 3000


def wire_minimum_ms(settings):
    """Steady state: the grid meter's blocks, then per box the control block and the meter block (has_meter),
    no set-point writes (they go out on change and every fifth of the fail-safe window only)."""
    reads = [n for _, n in TABLES["meter_sdm630"]["blocks"]]
    reads += [pb.CTRL_COUNT, pb.METER_COUNT] * N_BOXES
    chars = sum(8 + 5 + 2 * n for n in reads)  # request: id fc addr count crc; answer: id fc bytes data crc
    frames = 2 * len(reads)
    return (chars * settings.char_us + frames * settings.t35_us) / 1000.0, len(reads)


def main():
    st = serial_settings.parse(COM)
    bus = ptybus.PtyPair()
    peers = Peers(bus.peer, N_BOXES, 0)
    devs = devices(N_BOXES, 0)
    fw = ptybus.start_micropython(open(os.path.join(INTEGRATION, "mp_device_layer.py")).read(), bus.fw,
                                  {"devices": devs, "setpoints": {}, "every_ms": 100})
    samples = []
    try:
        last_cycles = -1
        deadline = time.monotonic() + 60
        while len(samples) < MEASURED_CYCLES and time.monotonic() < deadline:
            line = ptybus.wait_line(fw, "VIEW ", 20)
            v = json.loads(line[line.index("VIEW ") + 5:])
            b = v["buses"][0]
            if b["cycles"] != last_cycles and b["cycles"] > WARM_CYCLES:
                samples.append(b["cycle_ms"])
            last_cycles = b["cycles"]
            errs = [d["dev_id"] for d in v["devices"] if d["com_err"]]
        assert not errs, "devices with com errors: %s" % errs
    finally:
        ptybus.stop(fw)
        peers.stop()
        bus.close()
    wire, n_reads = wire_minimum_ms(st)
    med = statistics.median(samples)
    print("bus %s: %d wallboxes + grid meter, %d reads per cycle" % (COM, N_BOXES, n_reads))
    print("measured cycle on pty (processing only): median %d ms, worst %d ms over %d cycles"
          % (med, max(samples), len(samples)))
    print("wire minimum at %d baud:                  %.0f ms" % (st.baud, wire))
    est = wire + med
    print("estimate (wire minimum + measured):       %.0f ms   bar %d ms   %s"
          % (est, BAR_MS, "PASS" if est <= BAR_MS else "FAIL"))


if __name__ == "__main__":
    main()
