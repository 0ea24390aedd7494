# soft_meter (reference/http-api.md): read or set a wallbox's simulated energy meter (soft_meter.py). The answer
# is the bare reading in Wh, a JSON number: the reading, or with val= the reading before it was set.
from loadpilot.api.commands import CommandError
from loadpilot.soft_meter import MAX_WH


def run(commands, meter, args):
    dev_id = args.get("dev_id")
    if not dev_id:
        raise CommandError("soft_meter: give dev_id, the wallbox (e.g. dev_id=E2)")
    commands._wallbox(dev_id, "soft_meter")  # an unknown device or a meter is refused here
    if meter is None:
        raise CommandError("soft_meter: not available")
    val = args.get("val")
    if val is None:
        return meter.wh(dev_id)
    if not val.isdigit() or len(val) > 10 or int(val) > MAX_WH:
        raise CommandError("soft_meter: val must be an integer 0..%d Wh, got %r" % (MAX_WH, val))
    return meter.set(dev_id, int(val))
