# The command layer's user commands (reference/http-api.md "Benutzerinformationen", reference/users.md,
# docs/users.md) and the rights of a user's ID/PIN. api/commands.py dispatches here; this module is imported
# with the first such command. Who asks is commands.login: True the HTTP admin login, False HTTP without it (a
# user, known only by the user ID in the request), None a transport without a login (MQTT api/: admin rights,
# but its answers are published, so a user ID never appears in them).
# A wrong user ID is refused with Denied(guess=True): the HTTP login delays it like a wrong password.
from loadpilot.api.commands import CommandError, Denied


def _store(commands, cmd, make=True):
    if commands.users is None:
        raise CommandError("%s: no user store on this box" % cmd)
    try:
        return commands.users(make)
    except OSError as e:
        raise CommandError("%s: users unreadable: %s" % (cmd, e))


def _admin(commands, cmd):
    if commands.login is False:
        raise Denied("%s: needs the admin login" % cmd)


def _wallboxes(commands):
    out = [d["dev_id"] for d in commands.store.get("devices") if d["dev_id"][0] == "E"]
    local = commands.local_id()
    if local is not None and local not in out:
        out.append(local)
    return out


def _number(commands, us, text, cmd):
    """The user number of user ID text; a wrong one is a guess when no admin asks."""
    from loadpilot.sessions import users
    n = None
    if us is not None and isinstance(text, str):
        try:
            n = us.number(users.user_id(text))
        except users.UsersError:
            pass
    if n is None:
        if commands.login is False:
            raise Denied("%s: no user with this ID" % cmd, bool(text))  # none given: no guess
        raise CommandError("%s: no user with this ID" % cmd)
    return n


def get_users(commands, args, payload):
    """Every user (the admin's list): the document's array of user objects, streamed from flash."""
    _admin(commands, "get_users")
    us = _store(commands, "get_users", False)
    if us is None:
        return []
    from loadpilot.sessions.users import UsersStream
    return UsersStream(us, commands.login is None)


def get_user(commands, args, payload):
    """One user, by id=<user ID>: the admin any, a user only itself (the ID is the credential)."""
    text = args.get("id")
    if not text:
        if commands.login is False:
            raise Denied("get_user: give id=<user ID>")
        raise CommandError("get_user: give id=<user ID>")
    us = _store(commands, "get_user", False)
    u = us.read(_number(commands, us, text, "get_user"))
    if commands.login is None:
        u["id"] = "***"
    return u


def _same_rights(u, obj):
    """obj changes neither the wallbox assignment nor the priority of user u (what only the admin sets)."""
    if "dev_ids" in obj:
        d = obj["dev_ids"]
        if not isinstance(d, list) or not all(isinstance(x, str) for x in d) or sorted(set(d)) != u["dev_ids"]:
            return False
    if "priority" in obj:
        p = obj["priority"]
        if isinstance(p, bool) or ("maintain" if p is None else p) != u["priority"]:
            return False
    return True


def set_user(commands, args, payload):
    """POST a user object. The admin creates (an id from get_new_user_id, or a PIN of 8, 14 or 20 digits) and
    changes any user; without the admin login only an existing user's own ID, changing its own name, display
    and RFIDs, never its wallboxes or priority. Fields left out keep their value."""
    from loadpilot.sessions import users
    if not isinstance(payload, dict):
        raise CommandError("set_user: POST a JSON user object ({\"id\": ..., \"name\": ...})")
    us = _store(commands, "set_user")
    user = commands.login is False
    if "id" not in payload:
        if user:
            raise Denied("set_user: give your user ID (id)")
        raise CommandError("set_user: id missing (get a new one with get_new_user_id)")
    n = None
    if isinstance(payload["id"], str):
        try:
            n = us.number(users.user_id(payload["id"]))
        except users.UsersError:
            pass
    if user:
        if n is None:
            raise Denied("set_user: no user with this ID (creating a user needs the admin login)", True)
        if not _same_rights(us.read(n), payload):
            raise Denied("set_user: dev_ids and priority are set by the admin")
    try:
        n2 = us.set(payload, n, _wallboxes(commands))
    except users.UsersError as e:
        if user and "already in use" in str(e):  # an oracle for other users' IDs: counted as a guess
            raise Denied("set_user: %s" % e, True)
        raise CommandError("set_user: %s" % e)
    except OSError as e:
        raise CommandError("set_user: flash write failed (%s): nothing changed" % e)
    commands.log.info("users", "user %r %s" % (us.name(n2), "created" if n is None else "changed"))
    return {"ok": True, "created": n is None, "users": len(us)}


def get_new_user_id(commands, args, payload):
    """A new unique user ID as a JSON string (not reserved: set_user creates the user)."""
    _admin(commands, "get_new_user_id")
    if commands.login is None:
        raise CommandError("get_new_user_id: the answer would be published (MQTT api_res): ask over HTTP")
    return _store(commands, "get_new_user_id").new_id()


def del_user(commands, args, payload):
    """Delete the user id=<user ID> (admin): its wallboxes no longer need it; the last user removes the file."""
    _admin(commands, "del_user")
    us = _store(commands, "del_user", False)
    n = _number(commands, us, args.get("id"), "del_user")
    name = us.name(n)
    try:
        us.delete(n)
    except (ValueError, OSError) as e:
        raise CommandError("del_user: %s: nothing changed" % e)
    commands.log.info("users", "user %r deleted" % name)
    return {"ok": True, "users": len(us)}


def _find(commands, norm):
    """(store, its find()) of an ID in normal form, or None; never makes the store (a box without users)."""
    us = commands.users(False) if commands.users is not None else None
    f = us.find(norm) if us is not None else None
    return (us, f) if f is not None else None


def shown(commands, norm):
    """What a wallbox's rfid shows for a user's ID or RFID norm (the user's name for the ID, never the ID), or
    None when norm is no user's."""
    x = _find(commands, norm)
    if x is None:
        return None
    us, f = x
    return (us.name(f[0]) or "user") if f[1] is None else norm


def require_user(commands, norm, cmd, dev_id=None):
    """enter_rfid without the admin login: the ID must be a user's ID or RFID, else a guess; while a user's
    "Learn" is armed at dev_id, an unknown ID is the card to learn (api/rfid_fn.py)."""
    if _find(commands, norm) is None:
        if commands.learning is not None:  # dev_id None: the learning user's box is chosen (rfid_fn.target)
            from loadpilot.api import rfid_fn
            if rfid_fn.armed(commands, dev_id) is not None:
                return
        raise Denied("%s: needs the admin login or a user's ID/PIN or RFID" % cmd, True)


def box_user(commands, dev_id, text, cmd):
    """override_device without the admin login: rfid= must be the ID or an RFID of a user of dev_id. -> what
    the wallbox's rfid shows (the user's name for the user ID, never the ID)."""
    from loadpilot.sessions import ids
    norm = None
    try:
        norm = ids.normal(text) if text else None
    except ids.IdError:
        pass
    x = _find(commands, norm) if norm is not None else None
    if x is None or dev_id not in x[0].dev_ids(x[1][0]):
        if not text:
            raise Denied("%s: needs the admin login or the ID/PIN or RFID of a user of %s (rfid=)" % (cmd, dev_id))
        raise Denied("%s: needs the admin login or the ID/PIN or RFID of a user of %s" % (cmd, dev_id), True)
    return shown(commands, norm)


def learn_rfid(commands, args, payload):
    """learn_rfid&id=<user ID>: arms "Learn" for 60 s (admin, or that user): the next ID that is nobody's,
    presented at one of the user's wallboxes, becomes their RFID. &state=1 only reads how it went (armed, learned,
    expired, failed, or idle when this user armed nothing). One user learns at a time."""
    import time
    from loadpilot.api import rfid_fn
    us = _store(commands, "learn_rfid", False)
    n = _number(commands, us, args.get("id"), "learn_rfid")
    uid = us.read(n)["id"]
    L = commands.learning
    now = time.ticks_ms()
    mine = L is not None and L.uid == uid
    if args.get("state"):
        return L.view(now) if mine else {"learn": "idle"}
    if not us.dev_ids(n):
        raise CommandError("learn_rfid: this user has no wallbox yet: the admin assigns one first")
    if not mine and rfid_fn.armed(commands, None, now) is not None:
        raise CommandError("learn_rfid: another user is learning an RFID: try again in a minute")
    commands.learning = rfid_fn.Learning(uid, us.dev_ids(n), now)
    commands.log.info("users", "user %r: learning an RFID for 60 s at %s" % (us.name(n), ", ".join(us.dev_ids(n))))
    return commands.learning.view(now)


def get_user_status(commands, args, payload):
    """A user's own page (id=<user ID>; the admin may ask too): the user's name, their "Learn", the tiles of
    their wallboxes and of the other wallboxes whose charging user has not hidden them (show), and with
    sessions=1 the user's 5 newest sessions (at their wallboxes, with their name or one of their RFIDs: the
    journal is read from flash, so the page asks for them less often than for the tiles)."""
    import time
    from loadpilot.manager.model import REASON_NAMES
    us = _store(commands, "get_user_status", False)
    n = _number(commands, us, args.get("id"), "get_user_status")
    u = us.read(n)
    mine = us.dev_ids(n)
    a = commands.authorizer
    site = commands.site
    tiles = []
    for dev_id in _wallboxes(commands):
        shown, hide = a.shown_of(dev_id) if a is not None else (None, False)
        d = site.device(dev_id) if site is not None else None
        if d is None or (dev_id not in mine and hide):
            continue
        r = d.reading
        tiles.append({"dev_id": dev_id, "mine": dev_id in mine, "state": d.status,
                      "current_ma": list(r.current_ma), "power_w": r.power_w, "import_wh": r.import_wh,
                      "alloc_ma": d.alloc_ma, "reason": REASON_NAMES[d.reason], "user": shown,
                      "paused_by_user": bool((commands.overrides.get(dev_id) or {}).get("no_charging"))})
    L = commands.learning
    out = {"name": u["name"], "tiles": tiles,
           "learn": L.view(time.ticks_ms()) if L is not None and L.uid == u["id"] else {"learn": "idle"}}
    if args.get("sessions") and commands.sessions is not None:
        out["sessions"] = []
        from loadpilot.sessions import history
        tags = [u["name"] or "user"] + [r["id"] for r in u["rfids"]]
        keep = out["sessions"]
        for s in history.records(commands.sessions.journal):
            if s.dev_id in mine and s.id_tag in tags:
                keep.append(history.view(s))
                if len(keep) > 5:
                    keep.pop(0)
        keep.reverse()
    return out
