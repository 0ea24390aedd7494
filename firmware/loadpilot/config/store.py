# The flash-wear-aware configuration store.
#
#   store = Store(fs_root, log, clock=time, ports=None, budget=None)   # loads at once (see "Boot" below);
#                               ports: the board's COM ports, budget: its sockets (board.socket_budget)
#   store.get(key)              value; secrets come wrapped in schema.Secret (prints "***", .reveal() gives it)
#   store.secret(key)           the plain value of a secret, for the code that needs it (MQTT login, ...)
#   store.set(key, value)       -> True if it changed; raises ConfigError(field, reason) and changes nothing,
#                               also when the configuration would grow past MAX_CONFIG_BYTES
#   store.set_many(dict)        all-or-nothing; -> list of changed keys (both also check rules between settings:
#                               schema.check_together, e.g. a proxied unit against modbus_id, and the sockets
#                               the settings open against the board's budget; config.json import too)
#   store.view()                every setting with secrets redacted: what APIs, logs and the UI may show
#   store.size                  bytes the configuration takes in flash (JSON body); at most MAX_CONFIG_BYTES
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
# Size: one limit, MAX_CONFIG_BYTES (64 KB) of JSON body per slot. Every change is measured when it is set
# (store.size keeps the body's byte count, one entry per setting): a change that would take the body over
# the limit raises ConfigError and changes nothing. Boot reads any slot up to the same limit, so nothing the
# store accepted is refused at boot. 64 KB holds a full site (25 wallboxes, 25 meters, four user-defined
# meters with 4 KB definitions, 32 variables: about 40 KB) with room to spare; see docs/configuration.md.
#
# Atomicity: two slot files, lpconfig.a and lpconfig.b. Each is one header line
#   "LPCFG2 v=<file version> seq=<n> len=<body bytes> crc=<crc32 hex>" and a JSON body; the CRC covers
# the body and then the header text before "crc=", so a flipped bit in seq or v is caught like one in the
# body. (Slots headed "LPCFG", from before 2026-12, carry a CRC of the body only; they are still read.)
# A save writes the slot that does *not* hold the current configuration, with seq+1. Boot reads both and
# takes the newest slot whose header, length and CRC check out; any damage to the newest one (header, body,
# CRC, truncation) is logged by name and the other slot is used, and the next save overwrites the damaged
# slot, never the intact one. So a save cut at any instant leaves either the old slot (newest valid) or the
# complete new one: never a mix. littlefs is copy-on-write on top of that, but the scheme does not rely on
# it. host_tests/integration/test_config_flash.py cuts power at every erase and program of several saves on
# littlefs and boots each result, and damages every header bit and every 64-byte truncation of a slot.
#
# Streaming (the ESP32's heap is ~112 KB): a save serializes the configuration twice, one setting or list
# element at a time, never the whole body at once: first to count its bytes and CRC (needed in the header,
# and to skip a save of unchanged content), then into the file. Boot checks a slot's CRC in 512-byte
# chunks and then parses it straight from the file (json.load), so no raw copy of a slot is held either.
# The store keeps no second copy of the configuration: "what flash holds" is remembered as (bytes, CRC).
#
# Boot: the newest valid slot, migrated to the current version (migrate.py). A field that no longer
# validates falls back to its default with a warning naming it. No valid slot: defaults and a log line; an
# unreadable slot is renamed to <name>.bad for inspection. Without a stored configuration, an installer's
# config.json (a JSON object, partial is fine) is checked before it is parsed (at most MAX_IMPORT_BYTES,
# nested at most MAX_IMPORT_DEPTH deep), validated as a whole and imported. If anything about it fails, the
# log names the field or the reason, defaults stay, and the file is renamed config.json.bad, so it is not
# tried again. An imported file is committed at once and then replaced by config.json.imported: the
# imported settings with every secret redacted (admin password "***", passwords in broker URLs and device
# addresses user:***@). While a stored configuration exists config.json is not read.
import asyncio
import json
import os
import time
from array import array

from loadpilot.config import schema
from loadpilot.config.migrate import migrate
from loadpilot.config.schema import ConfigError, Secret

try:
    from binascii import crc32
except ImportError:  # CPython keeps crc32 in zlib
    from zlib import crc32

SLOTS = ("lpconfig.a", "lpconfig.b")
INSTALLER_FILE = "config.json"
MAX_CONFIG_BYTES = 65536  # JSON body of a slot: checked on every change, and the most boot reads
MAX_IMPORT_BYTES = 131072  # config.json may be pretty-printed; larger is refused before it is read
MAX_IMPORT_DEPTH = 32  # a valid configuration nests 6 deep; json.dumps and repr recurse (unix port: ~1,800)
_MAGIC = "LPCFG2"  # slot format 2: the CRC covers the header too
_MAGIC_1 = "LPCFG"  # slot format 1: CRC of the body only (still read)
_HEADER_MAX = 128  # a header line is about 50 bytes
_CHUNK = 512


class _Unreadable(Exception):
    pass


def _copy(v):
    if isinstance(v, list):
        return [dict(d) if isinstance(d, dict) else d for d in v]
    return v


def _plain(v):
    return v.reveal() if isinstance(v, Secret) else v


class _Out:
    """Where a slot body goes, piece by piece: counts its bytes and CRC, and writes them to f if given."""

    def __init__(self, f=None):
        self.f = f
        self.n = 0
        self.crc = 0

    def w(self, text):
        b = text.encode()
        self.n += len(b)
        self.crc = crc32(b, self.crc)
        if self.f is not None:
            self.f.write(b)


def _emit_entry(out, key, value):
    # one setting as json.dumps writes it inside the body; a list goes one element at a time, so the largest
    # string built is one device (a 4 KB meter definition at most), never the whole body
    out.w(json.dumps(key) + ": ")
    if isinstance(value, list):
        out.w("[")
        for i in range(len(value)):
            if i:
                out.w(", ")
            out.w(json.dumps(value[i]))
        out.w("]")
    else:
        out.w(json.dumps(value))


def _emit_body(out, values):
    out.w("{")
    first = True
    for k in values:
        if not first:
            out.w(", ")
        first = False
        _emit_entry(out, k, values[k])
    out.w("}")


def _entry_size(key, value):
    out = _Out()
    try:
        _emit_entry(out, key, value)
    except (RuntimeError, TypeError, ValueError, OverflowError) as e:  # RuntimeError: nested too deeply
        raise ConfigError(key, "cannot be stored (%s)" % type(e).__name__)
    return out.n


def _body_size(sizes):
    # {"k": v, ...}: braces, the entries, ", " between them
    n = 2 + 2 * (len(sizes) - 1)
    for s in sizes:
        n += s
    return n


def _index(key):
    # the setting's row in schema.FIELDS, which is where Store._sizes keeps its entry size
    fields = schema.FIELDS
    for i in range(len(fields)):
        if fields[i][0] == key:
            return i
    raise KeyError(key)


def _max_depth(f, limit):
    """Nesting depth of the JSON in file f, read in chunks; stops counting once it passes limit."""
    buf = bytearray(_CHUNK)
    depth = deepest = 0
    in_str = esc = False
    while True:
        n = f.readinto(buf)
        if not n:
            return deepest
        for i in range(n):
            c = buf[i]
            if in_str:
                if esc:
                    esc = False
                elif c == 0x5C:  # backslash
                    esc = True
                elif c == 0x22:
                    in_str = False
            elif c == 0x22:
                in_str = True
            elif c == 0x7B or c == 0x5B:  # { [
                depth += 1
                if depth > deepest:
                    deepest = depth
                    if deepest > limit:
                        return deepest
            elif c == 0x7D or c == 0x5D:
                depth -= 1


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
    def __init__(self, fs_root, log, clock=time, ports=None, budget=None):
        self._root = fs_root
        self.log = log
        self._clock = clock
        self._values = schema.defaults()
        self._committed = None  # (bytes, CRC) of the body the current slot holds (None: nothing stored)
        self._slot = None  # index into SLOTS of the current slot
        self.seq = 0
        self.dirty = False
        self._dirty_since = 0
        self.saves = 0
        self.save_errors = 0
        self.volatile = Volatile()
        self._listeners = []
        self._resize()
        self.ports = ports  # the board's COM ports (schema.com_ports), from the app: others are refused
        self.budget = budget  # the board's socket budget (board.socket_budget), from the app: more is refused
        try:
            self.load()
        except Exception as e:  # a bug here must not stop the boot: defaults, loudly
            self._values = schema.defaults()
            self._resize()
            self._committed = None
            self._slot = None
            self.log.error("config", "loading failed (%s: %s): using defaults" % (type(e).__name__, e))
            for name in SLOTS:  # so that no save can overwrite a slot this firmware failed to judge
                try:
                    os.stat(self._path(name))
                except OSError:
                    continue
                self.log.error("config", "%s kept as %s" % (name, self._keep_aside(name, ".bad")))

    def __repr__(self):
        return "<Store seq=%d dirty=%s saves=%d size=%d>" % (self.seq, self.dirty, self.saves, self.size)

    # ---- reading and writing settings

    def get(self, key):
        try:
            v = self._values[key]
        except KeyError:
            schema.validate(key, None)  # raises the right ConfigError (unknown or volatile)
            raise
        return schema.wrap(key, _copy(v))

    def peek(self, key):
        """The stored value itself, not a copy: for readers that only read and must not allocate (the MQTT
        publish round reads the device list every second). A change replaces the value, never mutates it."""
        try:
            return self._values[key]
        except KeyError:
            self.get(key)  # the right ConfigError
            raise

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
        schema.check_together(self._values, {key: v}, self.ports, self.budget)
        self._apply({key: v})
        self._changed(key)
        return True

    def set_many(self, values):
        if not isinstance(values, dict):
            raise ConfigError("config", "expected an object")
        plain = {}
        for k in values:
            plain[k] = _plain(values[k])
        checked = schema.validate_all(plain)  # first error raises; nothing applied yet
        schema.check_together(self._values, checked, self.ports, self.budget)
        changed = {}
        order = []
        for k in checked:
            if self._values[k] != checked[k]:
                changed[k] = checked[k]
                order.append(k)
        self._apply(changed)  # raises if the result would be too large; nothing applied then
        for k in order:
            self._changed(k)
        return order

    def view(self):
        out = {}
        for k in self._values:
            out[k] = schema.public_value(k, self._values[k])
        return out

    def subscribe(self, fn):
        self._listeners.append(fn)

    def _resize(self, name=None):
        # each setting's entry size, in schema.FIELDS order: 4 bytes a setting (a dict took about 17)
        fields = schema.FIELDS
        self._sizes = sizes = array("I", bytes(4 * len(fields)))
        for i in range(len(fields)):
            k = fields[i][0]
            try:
                sizes[i] = _entry_size(k, self._values[k])
            except ConfigError as e:  # only from a stored slot (name), never for a default
                self.log.warn("config", "%s: %s; using the default" % (name, e))
                self._values[k] = schema.defaults()[k]
                sizes[i] = _entry_size(k, self._values[k])
        self.size = _body_size(self._sizes)  # bytes of the JSON body a save writes now

    def _apply(self, changed):
        """Put validated values in place if the body stays within MAX_CONFIG_BYTES; else raise, change nothing."""
        if not changed:
            return
        sizes = {}
        size = self.size
        worst = None
        for k in changed:
            sizes[k] = _entry_size(k, changed[k])
            grow = sizes[k] - self._sizes[_index(k)]
            size += grow
            if worst is None or grow > worst[1]:
                worst = (k, grow)
        if size > MAX_CONFIG_BYTES and worst[1] > 0:  # (a change that shrinks an oversized one is taken)
            raise ConfigError(worst[0], "the configuration would take %d bytes, more than the %d the store "
                                        "keeps (now %d): nothing changed" % (size, MAX_CONFIG_BYTES, self.size))
        for k in changed:
            self._values[k] = changed[k]
            self._sizes[_index(k)] = sizes[k]
        self.size = size

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

    def _retry_later(self, what):
        self.save_errors += 1
        self._dirty_since = self._clock.ticks_ms()
        self.log.error("config", "%s; retry in %d s" % (what, self._values["commit_delay_s"]))

    def flush(self):
        """Commit pending changes now. -> True if a slot was written. A failed save is logged and retried
        one commit delay later; the previous configuration stays the one in flash."""
        if not self.dirty:
            return False
        body = _Out()
        try:
            _emit_body(body, self._values)  # counting pass: length and CRC for the header, nothing held
        except Exception as e:  # e.g. MemoryError on a fragmented heap: the flusher must live on
            self._retry_later("save failed (%s)" % type(e).__name__)
            return False
        if (body.n, body.crc) == self._committed:  # changed and changed back within the window
            self.dirty = False
            return False
        if body.n > MAX_CONFIG_BYTES:  # _apply keeps this from happening; writing it would lose it at boot
            self._retry_later("not saved: %d bytes, more than %d" % (body.n, MAX_CONFIG_BYTES))
            return False
        slot = 0 if self._slot is None else 1 - self._slot  # never the slot holding the current config
        seq = self.seq + 1
        try:
            self._write_slot(SLOTS[slot], seq, body)
        except Exception as e:  # the slot written is not the current one: nothing is lost
            self._retry_later("save to %s failed (%s)" % (SLOTS[slot], e if isinstance(e, OSError)
                                                          else type(e).__name__))
            return False
        self.seq = seq
        self._slot = slot
        self._committed = (body.n, body.crc)
        self.dirty = False
        self.saves += 1
        self.log.debug("config", "saved seq %d to %s (%d bytes)" % (seq, SLOTS[slot], body.n))
        return True

    def _path(self, name):
        return self._root + "/" + name if self._root else name

    def _write_slot(self, name, seq, body):
        prefix = "%s v=%d seq=%d len=%d " % (_MAGIC, schema.VERSION, seq, body.n)
        crc = crc32(prefix.encode(), body.crc) & 0xFFFFFFFF
        with open(self._path(name), "wb") as f:
            f.write(("%scrc=%08x\n" % (prefix, crc)).encode())
            out = _Out(f)
            _emit_body(out, self._values)
        if (out.n, out.crc) != (body.n, body.crc):  # cannot happen: nothing runs between the two passes
            raise OSError("body changed while it was written")

    # ---- boot

    def _read_slot(self, name):
        """-> (seq, version, values) or None if the file is missing; raises _Unreadable(damage)."""
        path = self._path(name)
        try:
            size = os.stat(path)[6]
        except OSError:
            return None
        try:
            f = open(path, "rb")
        except OSError as e:
            raise _Unreadable("cannot open (%s)" % e)
        try:
            return self._parse_slot(f, size)
        finally:
            f.close()

    def _parse_slot(self, f, size):
        head = f.read(_HEADER_MAX)
        if not head:
            raise _Unreadable("empty")
        if not head.startswith(_MAGIC_1.encode()):
            raise _Unreadable("not a configuration slot (bad header)")
        nl = head.find(b"\n")
        if nl < 0:
            raise _Unreadable("bad header: no end of line in its first %d bytes" % _HEADER_MAX)
        try:
            text = head[:nl].decode()
        except UnicodeError:
            raise _Unreadable("bad header: not text")
        parts = text.split(" ")
        if parts[0] not in (_MAGIC, _MAGIC_1):
            raise _Unreadable("not a configuration slot (bad header)")
        fields = {}
        for p in parts[1:]:
            k, eq, v = p.partition("=")
            if not eq or k not in ("v", "seq", "len", "crc") or k in fields:
                raise _Unreadable("bad header: unexpected %r" % p)
            if k == "crc":  # exactly as written: a flipped letter case must not pass
                if len(v) != 8 or [c for c in v if c not in "0123456789abcdef"]:
                    raise _Unreadable("bad header: crc is not 8 hex digits")
                fields[k] = int(v, 16)
            else:
                if not v.isdigit() or str(int(v)) != v:
                    raise _Unreadable("bad header: %s is not a number" % k)
                fields[k] = int(v)
        for k in ("v", "seq", "len", "crc"):
            if k not in fields:
                raise _Unreadable("bad header: %s missing" % k)
        want = fields["len"]
        if want > MAX_CONFIG_BYTES:
            raise _Unreadable("too large (%d bytes, limit %d)" % (want, MAX_CONFIG_BYTES))
        have = size - nl - 1
        if have < want:
            raise _Unreadable("truncated (%d of %d bytes)" % (have, want))
        if have > want:
            raise _Unreadable("%d bytes longer than its header says" % (have - want))
        f.seek(nl + 1)
        buf = memoryview(bytearray(_CHUNK))
        crc = 0
        left = want
        while left:
            n = f.readinto(buf[:min(left, _CHUNK)])
            if not n:
                raise _Unreadable("truncated while reading")
            crc = crc32(buf[:n], crc)
            left -= n
        if parts[0] == _MAGIC:
            crc = crc32(text[:text.rfind("crc=")].encode(), crc)
        if crc & 0xFFFFFFFF != fields["crc"]:
            raise _Unreadable("CRC mismatch")
        f.seek(nl + 1)
        try:
            values = json.load(f)  # straight from the file: no copy of the raw body in the heap
        except Exception as e:  # the CRC matched, so only a bug writes a body that does not parse
            raise _Unreadable("body unreadable (%s)" % type(e).__name__)
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
            except Exception as e:  # a slot must never take the other one down with it
                bad.append((SLOTS[i], "unreadable (%s: %s)" % (type(e).__name__, e)))
                continue
            if r is not None:
                found.append((r[0], i, r[1], r[2]))
        found.sort(reverse=True)  # newest seq first
        for seq, i, version, values in found:
            try:
                values, steps = migrate(version, values)
            except Exception as e:
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
                # the usual cause is a save cut short by a power loss; the next save overwrites it, not this one
                self.log.warn("config", "%s ignored: %s; using %s (seq %d)" % (name, why, SLOTS[i], seq))
            self.log.info("config", "loaded seq %d from %s (%d bytes)" % (seq, SLOTS[i], self.size))
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
            except Exception as e:  # a checker's bug costs this one field, not the configuration
                self.log.warn("config", "%s: %s: %s; using the default" % (name, k, type(e).__name__))
        self._resize(name)
        body = _Out()
        _emit_body(body, self._values)
        self._committed = (body.n, body.crc)

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
            try:
                os.remove(src)  # a file that cannot be moved must still not be tried again
                self.log.error("config", "could not rename %s (%s): removed it" % (name, e))
                return "(removed)"
            except OSError:
                self.log.error("config", "could not rename %s: %s" % (name, e))
                return name
        return name + suffix

    def _read_installer_file(self, size):
        """-> the validated settings of config.json; raises ConfigError (or anything json raises)."""
        if size > MAX_IMPORT_BYTES:  # before reading a byte of it
            raise ConfigError(INSTALLER_FILE, "too large (%d bytes, at most %d)" % (size, MAX_IMPORT_BYTES))
        with open(self._path(INSTALLER_FILE), "rb") as f:
            if _max_depth(f, MAX_IMPORT_DEPTH) > MAX_IMPORT_DEPTH:
                raise ConfigError(INSTALLER_FILE, "nested deeper than %d levels" % MAX_IMPORT_DEPTH)
            f.seek(0)
            try:
                obj = json.load(f)
            except ValueError:
                raise ConfigError(INSTALLER_FILE, "not valid JSON")
        return schema.validate_all(obj)

    def _import_installer_file(self):
        try:
            size = os.stat(self._path(INSTALLER_FILE))[6]
        except OSError:
            return
        try:
            checked = self._read_installer_file(size)
            schema.check_together(self._values, checked, self.ports, self.budget, True)  # on the defaults
            self._apply(checked)
        except Exception as e:  # whatever it is, the file must not be tried again at every boot
            self._values = schema.defaults()
            self._resize()
            why = str(e) if isinstance(e, ConfigError) else "%s: unreadable (%s: %s)" % (INSTALLER_FILE,
                                                                                        type(e).__name__, e)
            kept = self._keep_aside(INSTALLER_FILE, ".bad")
            self.log.error("config", "%s rejected: %s; keeping defaults; file kept as %s"
                           % (INSTALLER_FILE, why, kept))
            return
        self._mark_dirty()
        if not self.flush():
            return  # not in flash yet: the flusher retries, and until it succeeds a reboot imports it again
        # committed: the file with the plain secrets goes, a redacted record of what was imported stays
        try:
            os.remove(self._path(INSTALLER_FILE))
        except OSError as e:
            self.log.error("config", "could not remove %s: %s" % (INSTALLER_FILE, e))
        kept = INSTALLER_FILE + ".imported"
        try:
            shown = {}
            for k in checked:
                shown[k] = schema.public_value(k, self._values[k])
                if k == "devices":
                    for d in shown[k]:
                        if d.get("address"):
                            d["address"] = schema.redact_url(d["address"])
            with open(self._path(kept), "wb") as f:
                _emit_body(_Out(f), shown)
        except OSError as e:
            self.log.error("config", "could not write %s: %s" % (kept, e))
            kept = "(none)"
        self.log.info("config", "%s imported (%d settings: %s); file kept as %s with secrets redacted"
                      % (INSTALLER_FILE, len(checked), ", ".join(sorted(checked)), kept))
