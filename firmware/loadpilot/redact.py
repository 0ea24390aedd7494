# The one redaction function. Every text that leaves the box goes through it: views and API answers
# (config/schema.py public_value), error texts (api_res, set_res), log lines (log.py, so the console, the
# ring and the MQTT log topic), everything the MQTT service publishes, HA discovery and Modbus string
# registers (modbus/image.py set_string). Secrets sit in the user info of URLs (broker URLs, device
# addresses, user-defined meter addresses): scheme://user:password@host. The password becomes ***; the user
# and the host stay for diagnosis. Secret fields without a URL (admin_pwd) are never put into text at all; a
# secret a request carries as a query value (pwd=..., password=..., ..._key=...; docs/authorization.md) becomes
# *** too.
REDACTED = "***"
# query keys whose value is a secret: pwd= (admin_pwd, old_pwd, new_pwd), password= (ocpp_password), _key=,
# _cert=, _ca= (ocpp_tls_*): every SECRET setting of config/schema.py and every password argument
_QUERY_SECRETS = ("pwd=", "password=", "_key=", "_cert=", "_ca=")


def redact(text):
    """text with the password of every URL in it replaced by ***. str in, str out (anything else is returned
    as it is); a text without "=" secrets or "@" costs a few `in` tests and allocates nothing."""
    if not isinstance(text, str):
        return text
    for mark in _QUERY_SECRETS:  # a secret given as a query value (override_device pwd=, admin_pwd=, ...)
        if mark in text:
            text = _query_pwd(text, mark)
    if "://" not in text or "@" not in text:
        return text
    out = []
    keep = 0  # text[keep:] is not copied yet
    i = text.find("://")
    while i >= 0:
        a = i + 3
        # the user info ends at the last @ before the next URL, a quote or a line end; a password may hold
        # any other character (a space too), so this errs on the side of hiding a little more
        end = text.find("://", a)
        if end < 0:
            end = len(text)
        for stop in ('"', "\n"):
            s = text.find(stop, a, end)
            if s >= 0:
                end = s
        at = text.rfind("@", a, end)
        if at >= 0:
            colon = text.find(":", a, at)
            if colon >= 0:
                out.append(text[keep:colon + 1])
                out.append(REDACTED)
                keep = at
        i = text.find("://", end) if end < len(text) else -1
    out.append(text[keep:])
    return "".join(out)


def _query_pwd(text, mark):
    out = []
    keep = 0
    n = len(mark)
    i = text.find(mark)
    while i >= 0:
        a = i + n
        end = a
        while end < len(text) and text[end] not in "&\" '\n":
            end += 1
        out.append(text[keep:a])
        out.append(REDACTED)
        keep = end
        i = text.find(mark, end)
    out.append(text[keep:])
    return "".join(out)
