# System commands of the command layer (docs/webui.md, System page): status, the log, restart, and the
# configuration's export and import. Served like every other command: HTTP /cnf?cmd=..., MQTT api/<query>.
# Imported on the first such command (app.py registers the names only), so a box nobody asks costs nothing.
#
#   get_status                 version, uptime, heap (and its lowest free), loop lag, task states, every device
#                              with its reading, allocation and reason, the site totals and the house budget
#   get_log&level=WARN&since=N the log ring, oldest first, at or above level, only lines numbered >= since
#   restart                    answers, then flushes the configuration, closes open sessions as a planned stop
#                              and resets the board (the unix port: the process exits, as hal.reset() does)
#   export_config              every setting but the state counters, secrets left out (listed in "omitted")
#   import_config (POST JSON)  an export's "settings" object (or the object itself), all or nothing
#   accept_license&acc=1&allow_usage_stats=0   reference/http-api.md: LoadPilot has no license to accept and
#                              reports no statistics to anyone; the answers are stored (license_accepted,
#                              allow_usage_stats) so that an integration reads back what it set, and nothing else
#   set_diag_logging&enable=1  DEBUG lines into the log ring, the console and the MQTT log for DIAG_S, then back
#                              to INFO (enable=0 ends it at once); get_status diag_logging_s: the seconds left
import asyncio
import time

from loadpilot.api.commands import CommandError
from loadpilot.codes import TOTALS
from loadpilot.config.schema import SECRET, SECRET_URL, field
from loadpilot.log import DEBUG
from loadpilot.redact import REDACTED

NAMES = ("get_status", "get_log", "restart", "export_config", "import_config", "accept_license", "set_diag_logging")
_LEVELS = (("DEBUG", 10), ("INFO", 20), ("WARN", 30), ("ERROR", 40))
# state the box keeps in the configuration store, not configuration: never exported, never imported
_STATE_KEYS = ("count_restart", "s0_1_energy_wh", "s0_1_pulses", "s0_2_energy_wh", "s0_2_pulses")
RESTART_DELAY_MS = 500  # the answer leaves before the reset
_MAX_LOG_LINES = 64
DIAG_S = 300  # the document: diagnostic logging "runs for 5 minutes if not stopped"


class SystemCommands:
    def __init__(self, app):
        self.app = app
        self.restarting = False
        self.diag_until = None  # ticks_ms when diagnostic logging ends, None: off
        self._diag_task = None
        self._levels = None

    def run(self, name, args, payload):
        return getattr(self, "_" + name)(args, payload)

    def _get_status(self, args, payload):
        app = self.app
        st = app.status()
        del st["device_comm"]  # the per-driver view; the Site's devices below are what the pages show
        site = app.site
        totals = {}
        for i in range(len(TOTALS)):
            r = site.totals[i]
            # None: the figure cannot exist (no meter of that role), as SunSpec shows NaN
            totals[TOTALS[i]] = None if r.updated_ms is None else {"power_w": r.power_w,
                                                                    "current_ma": list(r.current_ma)}
        st["totals"] = totals
        cfg = app.config
        st["budget"] = {"max_total_current": cfg.get("max_total_current"),
                        "reserve_current": cfg.get("reserve_current"),
                        "max_total_cur_prc": cfg.volatile.get("max_total_cur_prc"),
                        "max_imbalance_current": cfg.get("max_imbalance_current"),
                        "lb_enabled": cfg.get("lb_enabled"), "avail_evse_w": site.avail_evse_w}
        st["log_count"] = app.log.count
        st["diag_logging_s"] = self._diag_left()
        st["ocpp"] = app.ocpp.view() if app.ocpp is not None else None  # no secret in it: the URL holds none
        a = app.commands.authorizer
        if a is not None:  # a charging user's name on the tile, only with their "display" on (docs/users.md)
            for v in st["devices"]:
                if v["dev_id"][0] == "E":
                    v["user"] = a.shown_of(v["dev_id"])[0]
        return st

    def _get_log(self, args, payload):
        name = args.get("level", "DEBUG").upper()
        level = _rank(name)
        if not level:
            raise CommandError("get_log: level must be DEBUG, INFO, WARN or ERROR, got %r" % name)
        since = args.get("since", "0")
        if not since.isdigit():
            raise CommandError("get_log: since must be a line number, got %r" % since)
        log = self.app.log
        ring = log.lines()
        first = log.count - len(ring)  # the number of the oldest line still in the ring
        n = int(since)
        out = []
        for k in range(len(ring)):
            e = ring[k]
            if first + k >= n and _rank(e[1]) >= level:
                out.append([first + k, e[0], e[1], e[2], e[3]])  # number, ticks_ms, level, tag, message (redacted)
        return {"count": log.count, "lines": out[-_MAX_LOG_LINES:]}

    def _restart(self, args, payload):
        if not self.restarting:
            self.restarting = True
            self.app.log.warn("app", "restart requested through the command layer")
            asyncio.create_task(self._reset_later())
        return {"ok": True, "restart_in_ms": RESTART_DELAY_MS}

    async def _reset_later(self):
        await asyncio.sleep_ms(RESTART_DELAY_MS)
        self.app.restart()  # changes flushed, open sessions journalled as Reboot, then the board resets

    def _export_config(self, args, payload):
        view = self.app.config.view()  # public values: URL passwords already ***
        settings = {}
        omitted = []
        for k in view:
            row = field(k)
            if row is None or k in _STATE_KEYS:
                continue
            v = view[k]
            if row[5] & SECRET or (row[5] & SECRET_URL and REDACTED in v):
                omitted.append(k)
                continue
            settings[k] = v
        for i, d in enumerate(settings.get("devices", ())):
            if REDACTED in d.get("address", ""):
                omitted.append("devices[%d].address password" % i)
        # users are no settings and their IDs are secrets (PINs): never exported (docs/users.md)
        omitted.append("users (user IDs are secrets: re-create them with get_new_user_id/set_user)")
        return {"settings": settings, "omitted": omitted}

    def _import_config(self, args, payload):
        if isinstance(payload, dict) and isinstance(payload.get("settings"), dict):
            payload = payload["settings"]  # an export as it was downloaded
        if not isinstance(payload, dict) or not payload:
            raise CommandError("import_config: POST a JSON object of settings (an export_config answer)")
        for k in payload:
            row = field(k)
            if row is None:
                raise CommandError("import_config: unknown setting %r" % k)
            if k in _STATE_KEYS or row[5] & SECRET:
                raise CommandError("import_config: %s cannot be imported (%s)" % (
                    k, "a counter of this box" if k in _STATE_KEYS else "a password: set it on its own"))
            if _has_redacted(payload[k]):
                raise CommandError("import_config: %s holds a password left out of the export (%s): give it or "
                                   "drop the setting" % (k, REDACTED))
        changed = self.app.commands.set_params(payload)  # validated whole; nothing changes on a refusal
        self.app.config.flush()  # in flash before the answer, as set_params over HTTP and MQTT
        return {"ok": True, "changed": changed}


    def _accept_license(self, args, payload):
        flags = {}
        for arg, key in (("acc", "license_accepted"), ("allow_usage_stats", "allow_usage_stats")):
            v = args.get(arg)
            if v is None and arg == "acc":
                raise CommandError("accept_license: needs acc=1 (or 0)")
            if v is not None:
                if v not in ("0", "1"):
                    raise CommandError("accept_license: %s must be 0 or 1, got %r" % (arg, v))
                flags[key] = v == "1"
        self.app.commands.set_params(flags)
        return {"ok": True}

    def _set_diag_logging(self, args, payload):
        v = args.get("enable")
        if v not in ("0", "1"):
            raise CommandError("set_diag_logging: enable must be 1 (start) or 0 (stop), got %r" % (v,))
        log = self.app.log
        if self._diag_task is not None:
            self._diag_task.cancel()
            self._diag_task = None
        if v == "1":
            if self.diag_until is None:
                self._levels = (log.level, log.console_level)  # what to go back to
            self.diag_until = time.ticks_add(time.ticks_ms(), DIAG_S * 1000)
            self._diag_task = asyncio.create_task(self._diag_end())
            log.level = DEBUG
            log.console_level = min(log.console_level, DEBUG)
            log.info("app", "diagnostic logging on for %d s" % DIAG_S)
        else:
            self._diag_stop()
        return {"ok": True, "diag_logging_s": self._diag_left()}

    async def _diag_end(self):
        await asyncio.sleep_ms(DIAG_S * 1000)
        self._diag_task = None
        self._diag_stop()

    def _diag_stop(self):
        log = self.app.log
        if self.diag_until is not None:
            self.diag_until = None
            log.level, log.console_level = self._levels
            log.info("app", "diagnostic logging off")

    def _diag_left(self):
        if self.diag_until is None:
            return 0
        return max(0, time.ticks_diff(self.diag_until, time.ticks_ms()) // 1000)


def _rank(name):
    for n, v in _LEVELS:
        if n == name:
            return v
    return 0


def _has_redacted(v):
    if isinstance(v, str):
        return REDACTED in v
    if isinstance(v, list):
        return any(_has_redacted(x) for x in v)
    if isinstance(v, dict):
        return any(_has_redacted(v[k]) for k in v)
    return False
