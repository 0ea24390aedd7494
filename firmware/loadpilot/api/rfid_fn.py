# A user's RFIDs beyond authorization (reference/rfid-functions.md, docs/users.md) and learning a new RFID
# ("Learn"). Imported only when users exist and an ID is presented at a wallbox (enter_rfid, the box's reader)
# or learn_rfid is given: a box without users imports nothing of this.
# - ac_ovch: the card placed while its user's wallbox charges pauses charging, placed again resumes it: the
#   same override as override_device C/c (Commands.override, the one writer), ended when the car is unplugged.
# - used_phases: the phases the car uses (0 keep, one bit: 1 phase, 7: 3 phases), in place of the wallbox's
#   phases setting for the transaction, at the beginning or during it. The load manager knows 1 or 3 phases
#   only: set_user refuses other masks (sessions/users.py PHASES).
# - Learning: learn_rfid arms Learning.window_ms for one user at a time; the next ID presented at one of that user's
#   wallboxes that is nobody's becomes the user's RFID (ac_auth) and authorizes there.
import time


class Learning:
    """One armed "Learn": the user (their ID in normal form: RAM only, never logged), their wallboxes, until
    when, and how it ended (armed | learned | expired | failed)."""
    window_ms = 60000  # reference/users.md: "starting a transaction within 1 minute" (a class value: tests shorten it)

    def __init__(self, uid, boxes, now):
        self.uid = uid
        self.boxes = boxes
        self.until = time.ticks_add(now, self.window_ms)
        self.state = "armed"
        self.rfid = None
        self.why = None

    def view(self, now):
        if self.state == "armed" and time.ticks_diff(self.until, now) <= 0:
            self.state = "expired"
        v = {"learn": self.state}
        if self.state == "armed":
            v["left_s"] = (time.ticks_diff(self.until, now) + 999) // 1000
        elif self.state == "learned":
            v["rfid"] = self.rfid
        elif self.state == "failed":
            v["why"] = self.why
        return v


def _users(commands):
    return commands.users(False) if commands.users is not None else None


def armed(commands, dev_id, now=None):
    """The Learning armed for a user of dev_id (None: any of the user's), or None."""
    L = commands.learning
    if L is None or L.view(time.ticks_ms() if now is None else now)["learn"] != "armed":
        return None
    return L if dev_id is None or dev_id in L.boxes else None


def learn(commands, dev_id, norm, now=None):
    """An ID presented at dev_id. While learning is armed for a user of dev_id, an ID that is nobody's becomes
    that user's RFID (ac_auth). -> True when it was learned (the caller then authorizes with it)."""
    L = armed(commands, dev_id, now)
    us = _users(commands)
    if L is None or us is None:
        return False
    log = commands.log
    n = us.number(L.uid)
    if n is None:  # the user was deleted meanwhile
        L.state, L.why = "failed", "the user no longer exists"
        return False
    f = us.find(norm)
    if f is not None:
        if f[0] != n:  # the same words whoever owns it: no hint whose it is
            log.warn("users", "%s: the RFID presented while learning is already in use: not learned" % dev_id)
        return False
    u = us.read(n)
    rfids = u["rfids"]
    rfids.append({"id": norm, "name": "", "ac_auth": True, "ac_ovch": False, "used_phases": 0})
    try:
        us.set({"rfids": rfids}, n)
    except (ValueError, OSError) as e:  # 8 RFIDs already, flash full: the card is not learned
        L.state, L.why = "failed", str(e)
        log.warn("users", "%s: learning an RFID for user %r failed: %s" % (dev_id, us.name(n), e))
        return False
    L.state, L.rfid = "learned", norm
    log.info("users", "%s: RFID %s learned for user %r" % (dev_id, norm, us.name(n)))
    return True


def target(commands, norm):
    """enter_rfid without dev_id, for an ID no waiting car takes: the wallbox it is meant for, or None.
    Learning: the armed user's waiting car, or their only wallbox. A card with functions: the one wallbox of
    its user where an authorized car is plugged in."""
    a = commands.authorizer
    us = _users(commands)
    if us is None:
        return None
    f = us.find(norm)
    if f is None:
        L = armed(commands, None)
        if L is None:
            return None
        return a.waiting(L.boxes) or (L.boxes[0] if len(L.boxes) == 1 else None)
    if a.waiting(us.dev_ids(f[0])) is not None or us.has_functions(norm) is None:
        return None
    boxes = [d for d in us.dev_ids(f[0]) if a.auth_of(d) is not None]
    return boxes[0] if len(boxes) == 1 else None


def apply(commands, dev_id, norm, running):
    """The functions of a user's RFID presented at one of the user's wallboxes. running: an authorized car
    was charging there before this card (ac_ovch toggles only then). -> what was done, a list of words."""
    us = _users(commands)
    x = us.has_functions(norm) if us is not None else None
    if x is None or dev_id not in us.dev_ids(x[0]):
        return []
    if commands.authorizer.auth_of(dev_id) is None:  # no car authorized there (now): nothing to steer
        return []
    r = us.read(x[0])["rfids"][x[1]]
    done = []
    ph = r["used_phases"]
    if ph:
        from loadpilot.sessions.users import PHASES
        d = commands.site.device(dev_id) if commands.site is not None else None
        if ph not in PHASES:
            commands.log.warn("users", "%s: used_phases %d: only 1 or 3 phases can be set: ignored" % (dev_id, ph))
        elif d is not None and d.phases is not None:
            commands.log.info("users", "%s reports its own phases: the card's phases are not applied" % dev_id)
        else:
            n = 3 if ph == 7 else 1
            commands.override(dev_id, phases=n, by="rfid")
            done.append("%d phase%s" % (n, "s" if n == 3 else ""))
    if r["ac_ovch"] and running:
        o = commands.overrides.get(dev_id)
        off = o is not None and o["no_charging"]
        commands.override(dev_id, "c" if off else "C", by="rfid")
        done.append("charging resumed" if off else "charging paused")
    if done:
        commands.log.info("users", "%s: RFID %s: %s" % (dev_id, norm, ", ".join(done)))
    return done
