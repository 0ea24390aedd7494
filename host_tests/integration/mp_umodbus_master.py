# The micropython-modbus 2.3.7 RTU master (umodbus.serial.Serial) on the unix port, over the shim's
# machine.UART, against our RTU slave (see mp_rtu_slave.py for its registers). One JSON line per step.
import json
import sys

import umodbus_machine_shim

umodbus_machine_shim.PTY = ARGS["pty"]
sys.modules["machine"] = umodbus_machine_shim
from umodbus.serial import Serial  # noqa: E402

host = Serial(uart_id=1, baudrate=9600, data_bits=8, stop_bits=1, parity=None, pins=(1, 2))


def step(name, fn):
    try:
        v = fn()
        print(json.dumps({"step": name, "value": list(v) if isinstance(v, tuple) else v}))
    except Exception as e:
        print(json.dumps({"step": name, "error": "%s: %s" % (type(e).__name__, e)}))


step("read1", lambda: host.read_holding_registers(1, 0, 5, signed=False))
step("read7", lambda: host.read_holding_registers(7, 1000, 3, signed=False))
step("input1", lambda: host.read_input_registers(1, 150, 2, signed=False))
step("read125", lambda: host.read_holding_registers(1, 60, 125, signed=False))
step("write1", lambda: host.write_single_register(1, 60, 60000, signed=False))
step("writemany7", lambda: host.write_multiple_registers(7, 1100, [11, 22, 33], signed=False))
step("readback1", lambda: host.read_holding_registers(1, 59, 3, signed=False))
step("readback7", lambda: host.read_holding_registers(7, 1099, 5, signed=False))
step("bad_address", lambda: host.read_holding_registers(1, 199, 2, signed=False))
step("bad_function", lambda: host.read_input_registers(7, 1000, 1, signed=False))
step("unknown_unit", lambda: host.read_holding_registers(9, 0, 1, signed=False))
step("after", lambda: host.read_holding_registers(7, 1129, 1, signed=False))
print(json.dumps({"step": "done"}))
