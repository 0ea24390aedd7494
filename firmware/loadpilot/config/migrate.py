# Brings a stored configuration from an older file version up to schema.VERSION, one step at a time.
# Each step is a function on the plain dict; a new version adds one step to STEPS and bumps schema.VERSION.
from loadpilot.config import schema


def _v1_to_v2(values):
    # v1 named the model-60000 points after their SunSpec labels and kept the broker as host + port;
    # v2 uses the HTTP API names and one broker URL.
    renames = (("max_current", "max_total_current"), ("power_reserve", "reserve_current"),
               ("overdraw", "overdraft_cur"), ("max_wallbox_current", "max_total_evse_current"),
               ("lm_active", "lb_enabled"))
    for old, new in renames:
        if old in values:
            values[new] = values.pop(old)
    if "lb_enabled" in values and values["lb_enabled"] in (0, 1):
        values["lb_enabled"] = bool(values["lb_enabled"])  # v1 kept the SunSpec 0/1
    host = values.pop("mqtt_host", None)
    port = values.pop("mqtt_port", None)
    if host:
        values["mqtt_url"] = "mqtt://%s:%d" % (host, port or 1883)
    return values


STEPS = {1: _v1_to_v2}


def migrate(version, values):
    """-> (values at schema.VERSION, list of step descriptions). Raises ValueError for versions we can't read."""
    if not isinstance(version, int) or version < 1:
        raise ValueError("bad version %r" % (version,))
    if version > schema.VERSION:
        raise ValueError("written by newer firmware (file v%d, this firmware reads up to v%d)"
                         % (version, schema.VERSION))
    done = []
    while version < schema.VERSION:
        step = STEPS.get(version)
        if step is None:
            raise ValueError("no migration from v%d" % version)
        values = step(values)
        done.append("v%d->v%d" % (version, version + 1))
        version += 1
    return values, done
