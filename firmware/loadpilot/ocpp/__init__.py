# OCPP 1.6J charge point client (docs/ocpp.md). Nothing below is imported unless ocpp_url is set.


def wanted(config):
    """True when a backend URL is configured: only then is the OCPP client imported and started."""
    return bool(config.get("ocpp_url"))
