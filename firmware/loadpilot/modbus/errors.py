# Errors a Modbus master raises, shared by the transports so a device driver catches the same classes
# whether its device sits on RS485 (rtu_master) or on the network (tcp_client): one `except ModbusError`
# covers both.


class ModbusError(Exception):
    """The device answered with a Modbus exception response; code is the exception code (1, 2, 3, ...)."""

    def __init__(self, code, fc=0):
        super().__init__("modbus exception %d (function %d)" % (code, fc))
        self.code = code
        self.fc = fc


class ModbusTransportError(Exception):
    """No usable answer: nothing came, the frame was damaged, or it did not fit the request."""


class ModbusTimeout(ModbusTransportError):
    """No answer within the request timeout."""


class CrcError(ModbusTransportError):
    """An RTU answer came with a wrong CRC (or was broken by a gap inside the frame)."""


class BadResponse(ModbusTransportError):
    """An answer with a good CRC that does not fit the request (function, length, byte count, echo)."""
