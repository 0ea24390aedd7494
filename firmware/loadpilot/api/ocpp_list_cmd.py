# The OCPP Local Authorization List in the command layer (docs/ocpp.md, docs/webui.md Whitelists page): read it
# with search and paging like the local whitelist, delete one entry or all. The list itself is the backend's
# (SendLocalList, ocpp/locallist.py); a local deletion sets its version to 0 so that the backend sends it again.
# Imported on the first such command (app.py registers the names only). Without OCPP (ocpp_url empty) every
# command answers an error and nothing of ocpp/ is imported.
#
#   ocpp_list_get&q=&offset=0&n=50   {"enabled", "version", "entries", "ids": [{id, status, expiry, parent}],
#                                     "next": offset of the next page or null}, sorted by idTag
#   ocpp_list_delete&id=TAG          {"ok": true, "entries": n, "version": 0}
#   ocpp_list_clear                  {"ok": true, "deleted": n, "version": 0}
from loadpilot.api.commands import CommandError

NAMES = ("ocpp_list_get", "ocpp_list_delete", "ocpp_list_clear")
PAGE = 50  # entries per answer (the list holds at most 100: ocpp/locallist.MAX_LENGTH)


def run(app, args):
    cmd = args.get("cmd")
    if app.ocpp is None:
        raise CommandError("%s: OCPP is not configured (ocpp_url is empty): there is no OCPP local list" % cmd)
    try:
        lst = app.ocpp.local_list()
        if cmd == "ocpp_list_get":
            return _get(app, lst, args)
        if cmd == "ocpp_list_delete":
            tag = args.get("id", "")
            if lst.status(tag) is None:
                raise CommandError("ocpp_list_delete: %r is not on the OCPP local list" % tag)
            lst.delete((tag,))
            return {"ok": True, "entries": len(lst.entries), "version": lst.version}
        return {"ok": True, "deleted": lst.delete(None), "version": lst.version}
    except OSError as e:  # flash full or failing: the list on flash is the old one
        raise CommandError("%s: flash write failed (%s): nothing changed" % (cmd, e))


def _get(app, lst, args):
    q = args.get("q", "").upper()
    off = _int(args, "offset", 0, 1 << 16)
    n = _int(args, "n", PAGE, PAGE) or PAGE
    tags = sorted(t for t in lst.entries if q in t.upper())
    out = []
    for tag in tags[off:off + n]:
        info = lst.info(tag)
        out.append({"id": tag, "status": lst.status(tag), "expiry": info[0], "parent": info[1]})
    return {"enabled": bool(app.config.get("ocpp_local_list")), "version": lst.version, "entries": len(lst.entries),
            "found": len(tags), "ids": out, "next": off + n if off + n < len(tags) else None}


def _int(args, key, default, hi):
    v = args.get(key)
    if v is None:
        return default
    if not v.isdigit() or int(v) > hi:
        raise CommandError("%s: %s must be an integer 0..%d" % (args.get("cmd"), key, hi))
    return int(v)
