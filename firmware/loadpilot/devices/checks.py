# The device list's checks beyond its shape, for a list being set now: each device's driver, address and
# definition (registry.check). The config schema runs it through its hook (schema.on_new, registered by the
# app), so config/ imports nothing above it; the drivers are imported only when a list is checked.
from loadpilot.config.schema import ConfigError


def check_devices(value):
    from loadpilot.devices import registry
    for i, dev in enumerate(value):
        why = registry.check(dev)
        if why is not None:
            raise ConfigError("devices[%d].%s" % (i, why[0]), why[1])
    return value
