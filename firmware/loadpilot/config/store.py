# The flash-wear-aware configuration store.
#
#   store = Store(fs_root, log, clock=time)   # loads at once (see "Boot" below)
#   store.get(key)              value; secrets come wrapped in schema.Secret (prints "***", .reveal() gives it)
#   store.secret(key)           the plain value of a secret, for the code that needs it (MQTT login, ...)
#   store.set(key, value)       -> True if it changed; raises ConfigError(field, reason) and changes nothing
#   store.set_many(dict)        all-or-nothing; -> list of changed keys (both also check rules between settings:
#                               schema.check_together, e.g. a proxied unit against modbus_id)
#   store.view()                every setting with secrets redacted: what APIs, logs and the UI may show
#   store.public(key)           one setting as view() shows it
#   store.volatile              the namespace for values that never reach flash: max_total_cur_prc,
#                               cm_flag1..cm_flag32, cm_var.<name>, setpoint.<dev_id> (same get/set/view)
#   store.dirty                 a change waits for its commit
#   store.poll()                commits when the oldest pending change is commit_delay_s old; -> True if saved
#   store.flush()               commits now (planned reboot, stop); -> True if it wrote
#   store.flusher()             coroutine for the supervisor: poll() once a second and when a commit is due
#   store.subscribe(fn)         fn(key) after each change of a persistent setting
#
# Wear: a change only marks the store dirty; all changes within commit_delay_s (150 s) go into one save, a
# set to the current value changes nothing, and a save whose content equals what flash holds is skipped.
#
# Atomicity: two slot files, lpconfig.a and lpconfig.b. Each is one header line
#   "LPCFG v=<file version> seq=<n> len=<body bytes> crc=<crc32 hex>" and a JSON body.
# A save writes the slot that does *not* hold the current configuration, with seq+1. Boot reads both and
# takes the newest slot whose length and CRC match. So a save cut at any instant leaves either the old slot
# (newest valid) or the complete new one: never a mix. littlefs is copy-on-write on top of that, but the
# scheme does not rely on it. host_tests/integration/test_config_flash.py cuts power at every erase and
# program of several saves on littlefs and boots each result.
#
# Boot: the newest valid slot, migrated to the current version (migrate.py). A field that no longer
# validates falls back to its default with a warning naming it. No valid slot: defaults and a log line; an
# unreadable slot is renamed to <name>.bad for inspection. Without a stored configuration, an installer's
# config.json (a JSON object, partial is fine) is validated as a whole and imported; if it fails, the log
# names the field and the reason, defaults stay, and the file is renamed config.json.bad. An imported file is
# committed at once and renamed config.json.imported; while a stored configuration exists config.json is
# not read.
import asyncio
import json
import os
import time

from loadpilot.config import schema
from loadpilot.config.migrate import migrate
from loadpilot.config.schema import ConfigError, Secret

try:
    from binascii import crc32
except ImportError:  # CPython keeps crc32 in zlib
    from zlib import crc32

SLOTS = ("lpconfig.a", "lpconfig.b")
INSTALLER_FILE = "config.json"
_MAGIC = "LPCFG"
_MAX_FILE = 32768  # larger than any valid configuration; refuse before reading it into the heap


class _Unreadable(Exception):
    pass


def _copy(v):
    if isinstance(v, list):
        return [dict(d) if isinstance(d, dict) else d for d in v]
    return v


def _plain(v):
    return v.reveal() if isinstance(v, Secret) else v


class Volatile:
    """Values that change often and never touch flash. Same get/set surface as the store."""

    def __init__(self):
        self._values = {}
        for row in schema.VOLATILE_FIELDS:
            self._values[row[0]] = row[2]
        self._fixed = len(self._values)

    def get(self, key, default=None):
        if key in self._values:
            return self._values[key]
        for p, _ in schema.VOLATILE_PREFIXES:
            if key.startswith(p):
                return default
        raise ConfigError(key, "unknown volatile key")

    def set(self, key, value):
        v = schema.validate_volatile(key, value)
        if key not in self._values:
            self._room_for(1)
        elif self._values[key] == v:
            return False
        self._values[key] = v
        return True

    def set_many(self, values):
        checked = {}
        for k in values:
            checked[k] = schema.validate_volatile(k, values[k])
        self._room_for(len([k for k in checked if k not in self._values]))
        for k in checked:
            self._values[k] = checked[k]

    def _room_for(self, n):
        if len(self._values) + n > self._fixed + schema.MAX_VOLATILE_FREE:
            raise ConfigError("volatile", "too many values (at most %d free-form keys)" % schema.MAX_VOLATILE_FREE)

    def view(self):
        return dict(self._values)


class Store:
    def __init__(self, fs_root, log, clock=time):
        self._root = fs_root
        self.log = log
        self._clock = clock
        self._values = schema.defaults()
        self._committed = None  # what the current slot holds (None: nothing stored)
        self._slot = None  # index into SLOTS of the current slot
        self.seq = 0
        self.dirty = False
        self._dirty_since = 0
        self.saves = 0
        self.save_errors = 0
        self.volatile = Volatile()
        self._listeners = []
        self.ports = None  # the board's COM ports (schema.com_ports), set by the app: others are refused
        try:
            self.load()
        except Exception as e:  # a bug here must not stop the boot: defaults, loudly
            self._values = schema.defaults()
            self.log.error("config", "loading failed (%s: %s): using defaults" % (type(e).__name__, e))

    def __repr__(self):
        return "<Store seq=%d dirty=%s saves=%d>" % (self.seq, self.dirty, self.saves)

    # ---- reading and writing settings

    def get(self, key):
        try:
            v = self._values[key]
        except KeyError:
            schema.validate(key, None)  # raises the right ConfigError (unknown or volatile)
            raise
        return schema.wrap(key, _copy(v))

    def public(self, key):
        """One setting as view() shows it (secrets redacted)."""
        self.get(key)  # unknown and volatile keys raise here
        return schema.public_value(key, self._values[key])

    def secret(self, key):
        return _plain(self.get(key))

    def set(self, key, value):
        v = schema.validate_new(key, _plain(value))
        if self._values[key] == v:
            return False
        schema.check_together(self._values, {key: v}, self.ports)
        self._values[key] = v
        self._changed(key)
        return True

    def set_many(self, values):
        if not isinstance(values, dict):
            raise ConfigError("config", "expected an object")
        plain = {}
        for k in values:
            plain[k] = _plain(values[k])
        checked = schema.validate_all(plain)  # first error raises; nothing applied yet
        schema.check_together(self._values, checked, self.ports)
        changed = []
        for k in checked:
            if self._values[k] != checked[k]:
                self._values[k] = checked[k]
                changed.append(k)
        for k in changed:
            self._changed(k)
        return changed

    def view(self):
        out = {}
        for k in self._values:
            out[k] = schema.public_value(k, self._values[k])
        return out

    def subscribe(self, fn):
        self._listeners.append(fn)

    def _mark_dirty(self):
        if not self.dirty:
            self.dirty = True
            self._dirty_since = self._clock.ticks_ms()

    def _changed(self, key):
        self._mark_dirty()
        for fn in self._listeners:
            try:
                fn(key)
            except Exception as e:  # a listener's bug must not undo or block the change
                self.log.error("config", "listener for %s failed: %s" % (key, e))

    # ---- committing

    def due(self):
        return self.dirty and time.ticks_diff(self._clock.ticks_ms(), self._dirty_since) \
            >= self._values["commit_delay_s"] * 1000

    def poll(self):
        return self.flush() if self.due() else False

    async def flusher(self):
        while True:
            self.poll()
            wait = 1000
            if self.dirty:  # wake exactly when due, so a change is in flash within the delay, not a second later
                left = self._values["commit_delay_s"] * 1000 \
                    - time.ticks_diff(self._clock.ticks_ms(), self._dirty_since)
                if 0 < left < wait:
                    wait = left
            await asyncio.sleep_ms(wait)

    def flush(self):
        """Commit pending changes now. -> True if a slot was written. A failed save is logged and retried
        one commit delay later; the previous configuration stays the one in flash."""
        if not self.dirty:
            return False
        if self._values == self._committed:  # changed and changed back within the window
            self.dirty = False
            return False
        slot = 0 if self._slot is None else 1 - self._slot
        seq = self.seq + 1
        try:
            self._write_slot(SLOTS[slot], seq, json.dumps(self._values))
        except OSError as e:
            self.save_errors += 1
            self._dirty_since = self._clock.ticks_ms()
            self.log.error("config", "save to %s failed (%s); retry in %d s"
                           % (SLOTS[slot], e, self._values["commit_delay_s"]))
            return False
        self.seq = seq
        self._slot = slot
        self._committed = {}
        for k in self._values:
            self._committed[k] = _copy(self._values[k])
        self.dirty = False
        self.saves += 1
        self.log.debug("config", "saved seq %d to %s" % (seq, SLOTS[slot]))
        return True

    def _path(self, name):
        return self._root + "/" + name if self._root else name

    def _write_slot(self, name, seq, body):
        body = body.encode()
        header = "%s v=%d seq=%d len=%d crc=%08x\n" % (_MAGIC, schema.VERSION, seq, len(body),
                                                        crc32(body) & 0xFFFFFFFF)
        with open(self._path(name), "wb") as f:
            f.write(header.encode())
            f.write(body)

    # ---- boot

    def _read_slot(self, name):
        """-> (seq, version, values) or None if the file is missing; raises _Unreadable(reason)."""
        path = self._path(name)
        try:
            size = os.stat(path)[6]
        except OSError:
            return None
        if size > _MAX_FILE:
            raise _Unreadable("too large (%d bytes)" % size)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise _Unreadable("read failed: %s" % e)
        nl = data.find(b"\n")
        fields = {}
        try:
            parts = data[:nl].decode().split(" ") if nl > 0 else []
            if not parts or parts[0] != _MAGIC:
                raise _Unreadable("not a configuration slot (bad header)")
            for p in parts[1:]:
                k, _, v = p.partition("=")
                fields[k] = int(v, 16) if k == "crc" else int(v)
            body = data[nl + 1:]
            if len(body) != fields["len"]:
                raise _Unreadable("truncated (%d of %d bytes)" % (len(body), fields["len"]))
            if crc32(body) & 0xFFFFFFFF != fields["crc"]:
                raise _Unreadable("CRC mismatch")
            values = json.loads(body)
        except (ValueError, KeyError, UnicodeError):
            raise _Unreadable("bad header or body")
        if not isinstance(values, dict):
            raise _Unreadable("body is not an object")
        return fields["seq"], fields["v"], values

    def load(self):
        found = []
        bad = []
        for i in range(len(SLOTS)):
            try:
                r = self._read_slot(SLOTS[i])
            except _Unreadable as e:
                bad.append((SLOTS[i], str(e)))
                continue
            if r is not None:
                found.append((r[0], i, r[1], r[2]))
        found.sort(reverse=True)  # newest seq first
        for seq, i, version, values in found:
            try:
                values, steps = migrate(version, values)
            except ValueError as e:
                bad.append((SLOTS[i], str(e)))
                continue
            self._apply_stored(values, SLOTS[i])
            self.seq = seq
            self._slot = i
            if steps:
                self._committed = None  # rewrite in the current format after the commit delay
                self._mark_dirty()
                self.log.info("config", "%s migrated %s" % (SLOTS[i], ", ".join(steps)))
            for name, why in bad:
                # the usual cause is a save cut short by a power loss; the next save overwrites it
                self.log.warn("config", "%s ignored: %s" % (name, why))
            self.log.info("config", "loaded seq %d from %s" % (seq, SLOTS[i]))
            try:
                os.stat(self._path(INSTALLER_FILE))
                self.log.warn("config", "%s ignored: a stored configuration exists" % INSTALLER_FILE)
            except OSError:
                pass
            return
        if bad:
            for name, why in bad:
                kept = self._keep_aside(name, ".bad")
                self.log.error("config", "%s unreadable: %s; kept as %s" % (name, why, kept))
            self.log.error("config", "no readable stored configuration: using defaults")
        else:
            self.log.info("config", "no stored configuration: using defaults")
        self._import_installer_file()

    def _apply_stored(self, values, name):
        for k in values:
            try:
                self._values[k] = schema.validate(k, values[k])
            except ConfigError as e:
                self.log.warn("config", "%s: %s; using the default" % (name, e))
        self._committed = {}
        for k in self._values:
            self._committed[k] = _copy(self._values[k])

    def _keep_aside(self, name, suffix):
        src = self._path(name)
        dst = src + suffix
        try:
            os.remove(dst)
        except OSError:
            pass
        try:
            os.rename(src, dst)
        except OSError as e:
            self.log.error("config", "could not rename %s: %s" % (name, e))
            return name
        return name + suffix

    def _import_installer_file(self):
        try:
            with open(self._path(INSTALLER_FILE)) as f:
                text = f.read()
        except OSError:
            return
        try:
            try:
                obj = json.loads(text)
            except ValueError:
                raise ConfigError(INSTALLER_FILE, "not valid JSON")
            checked = schema.validate_all(obj)
        except ConfigError as e:
            kept = self._keep_aside(INSTALLER_FILE, ".bad")
            self.log.error("config", "%s rejected: %s; keeping defaults; file kept as %s"
                           % (INSTALLER_FILE, e, kept))
            return
        for k in checked:
            self._values[k] = checked[k]
        self._mark_dirty()
        if self.flush():
            kept = self._keep_aside(INSTALLER_FILE, ".imported")
            self.log.info("config", "%s imported (%d settings: %s); file kept as %s"
                          % (INSTALLER_FILE, len(checked), ", ".join(sorted(checked)), kept))
