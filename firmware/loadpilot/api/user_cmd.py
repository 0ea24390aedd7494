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


def _user(commands, us, text, cmd):
    """The user whose ID text is; a wrong one is a guess when no admin asks."""
    from loadpilot.sessions import users
    u = None
    if isinstance(text, str):
        try:
            u = us.get(users.user_id(text))
        except users.UsersError:
            pass
    if u is None:
        if commands.login is False:
            raise Denied("%s: no user with this ID" % cmd, True)
        raise CommandError("%s: no user with this ID" % cmd)
    return u


def get_users(commands, args, payload):
    """Every user (the admin's list): the document's array of user objects."""
    _admin(commands, "get_users")
    from loadpilot.sessions.users import view
    us = _store(commands, "get_users", False)
    if us is None:
        return []
    hide = commands.login is None
    return [view(u, hide) for u in us.users]


def get_user(commands, args, payload):
    """One user, by id=<user ID>: the admin any, a user only itself (the ID is the credential)."""
    from loadpilot.sessions.users import view
    text = args.get("id")
    if not text:
        if commands.login is False:
            raise Denied("get_user: give id=<user ID>")
        raise CommandError("get_user: give id=<user ID>")
    us = _store(commands, "get_user", False)
    if us is None:
        if commands.login is False:
            raise Denied("get_user: no user with this ID", True)
        raise CommandError("get_user: no user with this ID")
    return view(_user(commands, us, text, "get_user"), commands.login is None)


def _same_rights(u, obj):
    """obj changes neither the wallbox assignment nor the priority of user u (what only the admin sets)."""
    from loadpilot.sessions.users import DEV_IDS, MAINTAIN, PRIO
    if "dev_ids" in obj:
        d = obj["dev_ids"]
        if not isinstance(d, list) or sorted(set(x for x in d if isinstance(x, str))) != list(u[DEV_IDS]) or \
                len(set(d)) != len(u[DEV_IDS]):
            return False
    if "priority" in obj:
        p = obj["priority"]
        if (None if p == MAINTAIN else p) != u[PRIO] or isinstance(p, bool):
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
    old = None
    if isinstance(payload["id"], str):
        try:
            old = us.get(users.user_id(payload["id"]))
        except users.UsersError:
            pass
    if user:
        if old is None:
            raise Denied("set_user: no user with this ID (creating a user needs the admin login)", True)
        if not _same_rights(old, payload):
            raise Denied("set_user: dev_ids and priority are set by the admin")
    try:
        us.set(payload, old, _wallboxes(commands))
    except users.UsersError as e:
        if user and "already in use" in str(e):  # an oracle for other users' IDs: counted as a guess
            raise Denied("set_user: %s" % e, True)
        raise CommandError("set_user: %s" % e)
    except OSError as e:
        raise CommandError("set_user: flash write failed (%s): nothing changed" % e)
    commands.log.info("users", "user %s %s" % (repr(payload.get("name", old[1] if old else "")),
                                               "created" if old is None else "changed"))
    return {"ok": True, "created": old is None, "users": len(us)}


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
    if us is None:
        raise CommandError("del_user: no user with this ID")
    u = _user(commands, us, args.get("id"), "del_user")
    try:
        us.delete(u)
    except (ValueError, OSError) as e:
        raise CommandError("del_user: %s: nothing changed" % e)
    commands.log.info("users", "user %r deleted" % u[1])
    return {"ok": True, "users": len(us)}


def find(commands, norm):
    """(user, rfid or None) of an ID in normal form, or None; never makes the store (a box without users)."""
    us = commands.users(False) if commands.users is not None else None
    return us.find(norm) if us is not None else None


def require_user(commands, norm, cmd):
    """enter_rfid without the admin login: the ID must be a user's ID or RFID, else a guess."""
    if find(commands, norm) is None:
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
    f = find(commands, norm) if norm is not None else None
    if f is None or dev_id not in f[0][3]:  # users.DEV_IDS
        if not text:
            raise Denied("%s: needs the admin login or the ID/PIN or RFID of a user of %s (rfid=)" % (cmd, dev_id))
        raise Denied("%s: needs the admin login or the ID/PIN or RFID of a user of %s" % (cmd, dev_id), True)
    return (f[0][1] or "user") if f[1] is None else norm
