# The command layer's authorization commands (docs/authorization.md): the whitelist (add, delete, delete all,
# search, CSV import in parts, CSV export in pages), enter_rfid, a wallbox reader's RFID and the credentials of
# override_device. api/commands.py dispatches here; this module is imported with the first such command.
from loadpilot.api.commands import CommandError
from loadpilot.codes import AUTH_ENTER_RFID, AUTH_HTTP_INPUT
from loadpilot.sessions import ids


def _id(text, cmd):
    try:
        return ids.normal(text)
    except ids.IdError as e:
        raise CommandError("%s: %s" % (cmd, e))


def _int_arg(args, key, default, lo, hi, cmd):
    v = args.get(key)
    if v is None:
        return default
    try:
        n = int(v)
    except ValueError:
        n = None
    if n is None or not lo <= n <= hi:
        raise CommandError("%s: %s must be an integer %d..%d" % (cmd, key, lo, hi))
    return n


def whitelist_cmd(commands, args, body):
    from loadpilot.sessions.whitelist import WhitelistError
    cmd = args.get("cmd")
    if commands.whitelist is None:
        raise CommandError("%s: no whitelist on this box" % cmd)
    try:
        wl = commands.whitelist()
    except OSError as e:
        raise CommandError("%s: whitelist unreadable: %s" % (cmd, e))
    try:
        if cmd == "whitelist_add":
            norm, added = wl.add(args.get("id", ""))
            return {"ok": True, "id": norm, "added": added, "entries": len(wl)}
        if cmd == "whitelist_delete":
            norm, found = wl.delete(args.get("id", ""))
            if not found:
                raise CommandError("whitelist_delete: %s is not on the whitelist" % norm)
            return {"ok": True, "id": norm, "entries": len(wl)}
        if cmd == "whitelist_clear":
            wl.clear()
            return {"ok": True, "entries": 0}
        if cmd == "whitelist_search":
            found, more = wl.search(args.get("q", ""))
            return {"ids": [{"id": n, "type": ids.kind(n)} for n in found], "more": more, "entries": len(wl)}
        if cmd == "whitelist_export":
            text, nxt = wl.export_page(_int_arg(args, "offset", 0, 0, 1 << 30, cmd))
            return {"csv": text, "next": nxt, "entries": len(wl)}
        # whitelist_import: body = CSV text; large files in parts: part=1..n, last=1 on the final one
        part = _int_arg(args, "part", 1, 1, 1 << 16, cmd)
        last = _int_arg(args, "last", 1, 0, 1, cmd)
        if isinstance(body, (bytes, bytearray, memoryview)) or isinstance(body, str):
            data = body
        else:
            data = b""
        res = wl.import_part(data, part, bool(last))
        if res is None:
            return {"ok": True, "part": part}
        return {"ok": True, "added": res[0], "entries": res[1]}
    except ids.IdError as e:
        raise CommandError("%s: %s" % (cmd, e))
    except WhitelistError as e:
        raise CommandError("%s: %s" % (cmd, e))
    except OSError as e:  # flash full or failing: the change did not happen
        raise CommandError("%s: flash write failed (%s): nothing changed" % (cmd, e))


def enter_rfid(commands, args):
    """With dev_id: authorizes the car waiting there (or pre-authorizes the next one). Without: the only
    waiting car, with several the one plugged in most recently."""
    from loadpilot.sessions.auth import AuthError
    rfid = _id(args.get("rfid", ""), "enter_rfid")
    a = commands.authorizer
    dev_id = args.get("dev_id")
    fn = None
    if commands.users is not None and commands.users(False) is not None:
        from loadpilot.api import rfid_fn as fn  # users exist: learning and a card's functions (docs/users.md)
        if dev_id is None:
            dev_id = fn.target(commands, rfid)
    learned = False
    try:
        if dev_id is not None:
            commands._wallbox(dev_id, "enter_rfid")
            running = a.auth_of(dev_id) is not None
            learned = fn is not None and fn.learn(commands, dev_id, rfid)
            norm, result = a.present(dev_id, rfid, AUTH_ENTER_RFID)
        else:
            running = False
            dev_id, norm, result = a.present_any(rfid, AUTH_ENTER_RFID)
    except AuthError as e:
        raise CommandError("enter_rfid: %s" % e)
    commands.rfids[dev_id] = norm
    out = {"ok": True, "dev_id": dev_id, "result": result}
    done = fn.apply(commands, dev_id, rfid, running) if fn is not None else None
    if done:
        out["functions"] = done
    if learned:
        out["learned"] = True
    return out


def reader_rfid(commands, dev_id, norm):
    """An RFID read by the wallbox itself (HTTP-input "rfid"): authorizes there if it is on the whitelist;
    an unknown card is logged (once) and leaves the car locked; the box's data is taken either way."""
    from loadpilot.sessions.auth import AuthError
    a = commands.authorizer
    if a is None or not a.requires(dev_id):
        return
    s = a.slots.get(dev_id)
    new = s is None or s.card != norm  # a box repeats its card on every push: functions act once per placing
    fn = None
    if new and commands.users is not None and commands.users(False) is not None:
        from loadpilot.api import rfid_fn as fn
    running = a.auth_of(dev_id) is not None
    if fn is not None:
        fn.learn(commands, dev_id, norm)
    try:
        a.present(dev_id, norm, AUTH_HTTP_INPUT)
    except AuthError:
        pass  # logged by the authorizer
    s = a.slots.get(dev_id)
    if s is not None:
        s.card = norm
    if fn is not None:
        fn.apply(commands, dev_id, norm, running)


def override_credentials(commands, flags, args):
    """override_device (reference/http-api.md): E/e need the admin password (pwd), U/u the user's RFID/PIN
    (rfid, on the whitelist or a user's) or the admin password. -> ("admin", None), ("rfid", the RFID/PIN) or
    ("user", the user's name or RFID).
    The password is compared, never stored, logged or echoed (redact.py hides pwd= in every text)."""
    admin_flags = "E" in flags or "e" in flags
    pwd = args.get("pwd")
    if pwd is not None:
        from loadpilot.config.schema import FACTORY_ADMIN_PWD
        real = commands.store.secret("admin_pwd") or FACTORY_ADMIN_PWD  # as the HTTP login: "" = never set
        if not _same(pwd, real):
            commands.log.warn("auth", "override_device: wrong admin password")
            from loadpilot.api.commands import Denied
            raise Denied("override_device: wrong admin password", True)  # HTTP delays it as a wrong login
        return "admin", None
    if admin_flags:
        raise CommandError("override_device: flags E/e need the admin password (pwd)")
    rfid = args.get("rfid")
    if not rfid:
        raise CommandError("override_device: flags U/u need the user's RFID/PIN (rfid) or the admin password (pwd)")
    norm = _id(rfid, "override_device")
    if commands.users is not None:  # a user's ID/PIN or RFID (docs/users.md): its name is shown, never the ID
        from loadpilot.api import user_cmd
        shown = user_cmd.shown(commands, norm)
        if shown is not None:
            return "user", shown
    if commands.whitelist is None:
        raise CommandError("override_device: no whitelist on this box to check the RFID/PIN")
    try:
        known = commands.whitelist().contains(norm)
    except OSError as e:
        raise CommandError("override_device: whitelist unreadable: %s" % e)
    if not known:
        raise CommandError("override_device: RFID/PIN %s is not on the whitelist" % norm)
    return "rfid", norm


def _same(a, b):
    # compares every character whatever the first difference (no early exit to time)
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    diff = len(a) ^ len(b)
    for i in range(len(a)):
        diff |= ord(a[i]) ^ ord(b[i % len(b)]) if b else 1
    return diff == 0
