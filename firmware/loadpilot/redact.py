# The one redaction function. Every text that leaves the box goes through it: views and API answers
# (config/schema.py public_value), error texts (api_res, set_res), log lines (log.py, so the console, the
# ring and the MQTT log topic), everything the MQTT service publishes, HA discovery and Modbus string
# registers (modbus/image.py set_string). Secrets sit in the user info of URLs (broker URLs, device
# addresses, user-defined meter addresses): scheme://user:password@host. The password becomes ***; the user
# and the host stay for diagnosis. Secret fields without a URL (admin_pwd) are never put into text at all; a
# password a request carries as a query value (pwd=..., docs/authorization.md) becomes *** too.
REDACTED = "***"


def redact(text):
    """text with the password of every URL in it replaced by ***. str in, str out (anything else is returned
    as it is); a text without "://" costs two `in` tests and allocates nothing."""
    if not isinstance(text, str):
        return text
    if "pwd=" in text:  # a password given as a query value (override_device pwd=, admin_pwd=)
        text = _query_pwd(text)
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


def _query_pwd(text):
    out = []
    keep = 0
    i = text.find("pwd=")
    while i >= 0:
        a = i + 4
        end = a
        while end < len(text) and text[end] not in "&\" '\n":
            end += 1
        out.append(text[keep:a])
        out.append(REDACTED)
        keep = end
        i = text.find("pwd=", end)
    out.append(text[keep:])
    return "".join(out)
