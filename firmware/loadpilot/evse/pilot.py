# IEC 61851-1 control pilot (CP) and proximity pilot (PP) arithmetic. Pure functions, integer units:
# mA, mV, ohms, duty in 0.01 % steps ("cpct", 0..10000).
#
# CP line levels (high half of the 1 kHz +-12 V square wave): A +12 V no vehicle, B +9 V vehicle connected,
# C +6 V charging, D +3 V charging with ventilation, E 0 V short/error, F -12 V EVSE not available.
# Output convention for duty_cpct on the CP PWM: 10000 = constant +12 V (no power offered, "X1"),
# 0 = constant -12 V (CP off: state F, used to simulate an unplug), 1..9999 = PWM offering a current.
from micropython import const

A = const(0)  # the numbers match register 8092 charge_pilot_state
B = const(1)
C = const(2)
D = const(3)
E = const(4)
F = const(5)
DIODE_FAULT = const(6)  # not a line state: PWM runs but the negative half is missing (EV diode shorted)
STATE_NAMES = ("A", "B", "C", "D", "E", "F", "diode")

DUTY_HIGH = const(10000)  # constant +12 V
DUTY_OFF = const(0)       # constant -12 V
MIN_CURRENT_MA = const(6000)
MAX_CURRENT_MA = const(80000)
HYST_MV = const(400)      # a level must pass a boundary by this much to leave the previous state

# Lower boundary of each state's high level (halfway between nominal levels), A..E; below E's is F.
_LOWER_MV = (10500, 7500, 4500, 1500, -6000)
_UPPER_MV = (100000, 10500, 7500, 4500, 1500)
DIODE_LOW_MAX_MV = const(-10500)  # with PWM on the low half must be near -12 V (a shorted diode gives ~-9 V)


def duty_cpct_for_current(ma):
    """Duty (0.01 %) that offers ma to the EV. 0 below 6 A: no offer (the caller outputs DUTY_HIGH)."""
    if ma < MIN_CURRENT_MA:
        return 0
    if ma > MAX_CURRENT_MA:
        ma = MAX_CURRENT_MA
    # rounded down: the car is never offered more than the limit, not even by the 0.01 % step
    if ma <= 51000:
        return ma // 6                # duty % = A / 0.6
    return ma // 25 + 6400            # duty % = A / 2.5 + 64


def current_ma_for_duty(cpct):
    """What an EV reads from a duty (inverse of the table above); 0 outside the current-offering range."""
    if cpct < 1000 or cpct > 9600:
        return 0
    if cpct <= 8500:
        return cpct * 6
    return (cpct - 6400) * 25


def _state_for(mv):
    for s in range(5):
        if mv >= _LOWER_MV[s]:
            return s
    return F


def classify_cp(mv_high, mv_low, prev_state):
    """CP state from the sampled high and low level. mv_low is None when no PWM runs (constant output);
    with PWM on, a low level above DIODE_LOW_MAX_MV while a vehicle is seen (B/C/D) is DIODE_FAULT.
    Hysteresis: a level within HYST_MV outside prev_state's band stays prev_state."""
    if A <= prev_state <= E:
        if _LOWER_MV[prev_state] - HYST_MV <= mv_high < _UPPER_MV[prev_state] + HYST_MV:
            s = prev_state
        else:
            s = _state_for(mv_high)
    elif prev_state == F and mv_high < _LOWER_MV[E] + HYST_MV:
        s = F
    else:
        s = _state_for(mv_high)
    if mv_low is not None and B <= s <= D and mv_low > DIODE_LOW_MAX_MV:
        return DIODE_FAULT
    return s


# PP: resistor between PP and PE in the plug codes the cable's capacity (IEC 61851/62196).
PP_NO_CABLE = const(0)
PP_INVALID = const(-1)
# (upper bound ohms exclusive, capacity mA), ascending; nominal 100 / 220 / 680 / 1500 ohm
_PP_TABLE = ((50, PP_INVALID), (160, 63000), (400, 32000), (1000, 20000), (2700, 13000), (4000, PP_INVALID))


def pp_capacity_ma(ohms):
    """Cable capacity in mA from the PP resistance; PP_NO_CABLE (0) when open, PP_INVALID (-1) when the
    value fits no coding (short, or between 2.7 and 4 kOhm)."""
    if ohms is None or ohms >= 4000:
        return PP_NO_CABLE
    for limit, ma in _PP_TABLE:
        if ohms < limit:
            return ma
    return PP_NO_CABLE


def pp_ohms_from_mv(mv, pullup_ohms, vref_mv):
    """PP resistance from the voltage at the PP pin, which a pull-up of pullup_ohms ties to vref_mv.
    None (open) when the pin sits at (or above) the reference."""
    if mv >= vref_mv:
        return None
    if mv <= 0:
        return 0
    return pullup_ohms * mv // (vref_mv - mv)
