# The command layer's charging-history and account commands (docs/sessions.md, docs/http.md): get_sessions,
# export_sessions and change_admin_pwd. api/commands.py dispatches here; this module is imported with the first
# such command, so the core profile's heap does not hold them.
from loadpilot.api.commands import CommandError


def _history(commands, cmd):
    if commands.sessions is None:
        raise CommandError("%s: the session journal is not available" % cmd)
    from loadpilot.sessions import history
    return history


def _wall():
    from loadpilot.sessions.tracker import wall_now
    return wall_now()


def _arg_int(args, key, lo, hi, default):
    text = args.get(key)
    if text is None:
        return default
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise CommandError("%s must be an integer %d..%d, got %r" % (key, lo, hi, text))
    return int(text)


def get_sessions(commands, args, payload):
    """The dashboard figures, the open sessions and the newest n closed ones (n 0..20, default 10)."""
    h = _history(commands, "get_sessions")
    n = _arg_int(args, "n", 0, 20, 10)
    out = h.figures(commands.sessions, _wall())
    out["latest"] = h.latest(commands.sessions.journal, n)
    return out


def export_sessions(commands, args, payload):
    """The CSV of the sessions of the last `days` days (1..45, default 30), as a stream: each transport sends
    its length() and then its parts() (MQTT: one api_res publish written chunk by chunk)."""
    h = _history(commands, "export_sessions")
    return h.CsvExport(commands.sessions.journal, _wall(), _arg_int(args, "days", 1, 45, 30))


def change_admin_pwd(commands, args, payload):
    """old_pwd must be the current password (a box that never had one set: the factory password)."""
    from loadpilot.config.schema import FACTORY_ADMIN_PWD
    old = args.get("old_pwd", "")
    new = args.get("new_pwd", "")
    if old != (commands.store.secret("admin_pwd") or FACTORY_ADMIN_PWD):
        raise CommandError("change_admin_pwd: old_pwd is not the current admin password")
    if not 8 <= len(new) <= 64 or new == FACTORY_ADMIN_PWD:
        raise CommandError("change_admin_pwd: new_pwd must be 8 to 64 characters and not the factory password")
    commands.set_params({"admin_pwd": new})
    commands.store.flush()  # a new password must survive a power cut right after it was set
    return {"ok": True}
