"""A whole site on the host: the firmware (full app, MicroPython binary) as master of a pty RS485 bus with
pymodbus Power Brain wallboxes and an SDM630 grid meter. Shared by test_site_mp.py and tools/bench/overload.py."""
import struct

import ptybus
from firmware_proc import Firmware, free_port, wait_for
from test_devices_mp import Peers

COM = "COM1,19200,8,n,1"
METER = 100


def f32_words(x):
    return list(struct.unpack(">HH", struct.pack(">f", x)))


class SiteRig:
    def __init__(self, n_boxes=3, max_total_ma=32000, tmp_dir=None, switchable=(), patch=None, **cfg):
        """switchable: units whose 8113 bit 8 says they may switch 1p/3p while plugged in; patch: MicroPython
        code run before the firmware boots (Firmware's patch=)."""
        self.bus = ptybus.PtyPair()
        self.peers = Peers(self.bus.peer, n_boxes, 0, switchable)
        devices = [{"dev_id": "M1", "driver": "meter_sdm630", "address": COM, "id": METER, "role": 3}]
        for u in range(1, n_boxes + 1):
            devices.append({"dev_id": "E%d" % (u + 1), "driver": "evse_powerbrain", "address": COM, "id": u,
                            "max_charging_cur": 16000})
        config = {"modbus_tcp_port": free_port(), "pb_tcp_port": 0, "max_total_current": max_total_ma,
                  "meter_timeout_s": 3, "devices": devices}
        config.update(cfg)
        self.fw = Firmware(fs_dir=tmp_dir, config=config, env={"LOADPILOT_UART_RS485_1": self.bus.fw},
                           patch=patch)
        self.fw.start()

    def limit_ma(self, unit):
        """The charging current limit the firmware wrote into wallbox `unit` (8093, 0.1 A)."""
        return self.peers.get(unit, 8093)[0] * 100

    def offered_ma(self, unit):
        """What the firmware lets wallbox `unit` draw: 8093 (0.1 A) while 8094 enables charging, else 0."""
        limit, enable = self.peers.get(unit, 8093, 2)
        return limit * 100 if enable else 0

    def set_grid_ma(self, ma):
        for i in range(3):
            self.peers.cmd(op="set", unit=METER, addr=6 + 2 * i, values=f32_words(ma / 1000.0), fc=4)

    def device(self, dev_id):
        return {d["dev_id"]: d for d in self.fw.status()["devices"]}[dev_id]

    def wait(self, pred, timeout=30.0, step=0.05):
        return wait_for(pred, timeout, step)

    def close(self):
        self.fw.stop()
        self.peers.stop()
        self.bus.close()
