# The current the local charge point may offer: the smallest of all limits that apply, and which one it was
# (the views show the reason). Pure; a limit of None does not apply. compute() allocates nothing, so the
# task can call it every CP tick.
from micropython import const

NONE = const(0)
CABLE = const(1)
HARDWARE = const(2)
FIXED = const(3)
MODBUS = const(4)
MANAGER = const(5)
OCPP = const(6)
REASON_NAMES = ("none", "cable", "hardware", "fixed", "modbus", "manager", "ocpp")


class Limits:
    """Each field in mA; None means "no limit from this source". hardware_ma is the board/installation
    maximum and always applies."""

    def __init__(self, hardware_ma=32000):
        self.cable_ma = None    # PP cable capacity (0 = no cable or invalid coding)
        self.hardware_ma = hardware_ma
        self.fixed_ma = None    # fixed_current (8091): the cable rating where PP codes none (tethered cable)
        self.modbus_ma = None   # charging_cur_limit (8093), or fail_safe_current once the master went quiet
        self.manager_ma = None  # Charging Manager allocation for this charge point
        self.ocpp_ma = None     # OCPP charging profile limit
        self.ma = 0
        self.reason = NONE

    def compute(self):
        """Set and return self.ma, with self.reason the source that gave it (the first in field order on a tie,
        hardware before cable)."""
        best = self.hardware_ma
        why = HARDWARE
        cable = self.cable_ma
        # fixed_current stands in for a cable PP cannot code (tethered cable: PP open); a coded cable still
        # limits, so a fixed_current set too high can never overload a thinner plugged-in cable
        if cable is not None and not (cable <= 0 and self.fixed_ma is not None) and cable < best:
            best = cable
            why = CABLE
        v = self.fixed_ma
        if v is not None and v < best:
            best = v
            why = FIXED
        v = self.modbus_ma
        if v is not None and v < best:
            best = v
            why = MODBUS
        v = self.manager_ma
        if v is not None and v < best:
            best = v
            why = MANAGER
        v = self.ocpp_ma
        if v is not None and v < best:
            best = v
            why = OCPP
        if best < 0:
            best = 0
        self.ma = best
        self.reason = why
        return best

    def reason_name(self):
        return REASON_NAMES[self.reason]

    def view(self):
        return {"ma": self.ma, "reason": REASON_NAMES[self.reason], "cable_ma": self.cable_ma,
                "hardware_ma": self.hardware_ma, "fixed_ma": self.fixed_ma, "modbus_ma": self.modbus_ma,
                "manager_ma": self.manager_ma, "ocpp_ma": self.ocpp_ma}
