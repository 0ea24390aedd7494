# Modbus TCP -> RTU proxy ("Modbus proxy" in the system configuration): requests that arrive over Modbus
# TCP for the configured unit ids go out on an RS485 bus through the RTU master, and the slave's answer
# (data or its exception) goes back to the TCP client unchanged. When the bus gives no usable answer the
# client gets exception 0x0B (gateway target device failed to respond); a request that cannot be put on
# the bus at all gets 0x0A (gateway path unavailable).
#
# Each proxied unit is one small async handler in the TCP server's Router (pdu.py's async-handler
# interface), so the TCP server needs nothing proxy-specific. The RTU master's bus lock queues requests
# from several TCP clients; each waits at most for the requests before it plus its own timeout.
from loadpilot.modbus import pdu, rtu
from loadpilot.modbus.errors import ModbusTransportError

# the function codes a proxied unit forwards; others are refused here with 01, as the slave itself would
FORWARDED_FUNCTIONS = (1, 2, 3, 4, 5, 6, 15, 16, 23)


class ProxiedUnit:
    is_async = True
    functions = FORWARDED_FUNCTIONS

    def __init__(self, master, rtu_unit, timeout_ms=None, resolve=None):
        """resolve: optional resolve(handler) -> the master to use now, or None while the bus is unavailable
        (the app's proxy service follows the device layer's master this way); without it, master is fixed."""
        self.master = master
        self.rtu_unit = rtu_unit
        self.timeout_ms = timeout_ms
        self.resolve = resolve
        self.forwarded = 0
        self.failed = 0

    async def handle(self, req, req_len, out):
        if req_len < 1:
            return 0
        fc = req[0]
        if fc not in FORWARDED_FUNCTIONS:
            return pdu.exception(out, fc, pdu.ILLEGAL_FUNCTION)
        master = self.master if self.resolve is None else self.resolve(self)
        if req_len > rtu.MAX_FRAME - 3 or master is None:
            self.failed += 1
            return pdu.exception(out, fc, pdu.GATEWAY_PATH_UNAVAILABLE)
        try:
            n = await master.transact(self.rtu_unit, req, req_len, out, self.timeout_ms)
        except ModbusTransportError:  # timeout, bad CRC, an answer that does not fit: the target did not respond
            self.failed += 1
            return pdu.exception(out, fc, pdu.GATEWAY_NO_TARGET)
        except Exception:  # the UART itself failed (OSError), or was closed under a queued request
            self.failed += 1
            return pdu.exception(out, fc, pdu.GATEWAY_PATH_UNAVAILABLE)
        self.forwarded += 1
        return n


def install(router, master, units, timeout_ms=None):
    """Route TCP unit ids to the RTU bus of master. units is a list of ids (same id on both sides) or a
    dict {tcp_unit: rtu_unit}. Returns the handlers by TCP unit id."""
    mapping = units if isinstance(units, dict) else {u: u for u in units}
    handlers = {}
    for tcp_unit, rtu_unit in mapping.items():
        if not 1 <= rtu_unit <= 247:
            raise ValueError("RTU unit id %d: must be 1..247" % rtu_unit)
        h = ProxiedUnit(master, rtu_unit, timeout_ms)
        router.add(tcp_unit, h)
        handlers[tcp_unit] = h
    return handlers
