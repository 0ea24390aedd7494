# Every JSON document from outside comes in here: MQTT api/, set/<dev_id>, ctl, user-defined meter topics,
# the HTTP API, the installer's config.json. One cheap pass over the bytes checks size, nesting depth, number
# of keys and number length before json.loads runs: MicroPython's parser recurses and dies at about 1,900
# levels with RuntimeError (no answer at all), and a 5,000-digit number is a heap-hungry bigint. A refused
# document raises JsonError (a ValueError) that says which limit, so every transport can answer with it.
#
# relaxed=True also takes object keys written as bare identifiers, {"E1": {cur: 8000, ena: true}}, because
# seeds/mqtt-api.md prints the ctl example that way and integrations send exactly that text. The scan then
# copies the text and quotes such keys; strings are copied untouched. Nothing is evaluated, nothing else is
# relaxed: single quotes, trailing commas and comments stay errors.
import json

from micropython import const

MAX_BYTES = const(8192)  # a command body; MQTT already drops messages over its 4,096-byte packet buffer
MAX_DEPTH = const(16)    # the deepest legitimate document (config.json: devices/definition/query) needs 6
MAX_KEYS = const(256)    # object members in the whole document (set_params of every setting needs ~80)
MAX_NUMBER = const(32)   # characters of one number: -1.2345678901234567e+308 has 24

# the installer's config.json: a 25-wallbox, 25-meter site with user-defined meters and 32 variables is about
# 43 KB and 2,000 keys
CONFIG_BYTES = const(65536)
CONFIG_KEYS = const(8192)

_QUOTE = const(34)
_BACKSLASH = const(92)
_COLON = const(58)
_COMMA = const(44)
_OBJ = const(123)  # {
_OBJ_END = const(125)
_ARR = const(91)  # [
_ARR_END = const(93)

# what the scan expects next: MicroPython's json.loads takes missing or doubled commas and colons
# ({"cur": 9000,} and [1 2] parse), so the structure is checked here and json.loads only reads the tokens
_VALUE = const(0)        # after : or , in an array, or at the start
_FIRST_VALUE = const(1)  # after [: a value or ]
_FIRST_KEY = const(2)    # after {: a key or }
_KEY = const(3)          # after , in an object
_COLON_NEXT = const(4)   # after a key
_NEXT = const(5)         # after a value in a container: , or the end of the container
_DONE = const(6)         # after the top-level value: only white space


class JsonError(ValueError):
    limit = False  # True: the text broke a limit (JsonLimit); False: it is not JSON at all


class JsonLimit(JsonError):
    limit = True


# byte classes for the scan: one table lookup per byte outside strings
_C_BAD = const(0)
_C_SPACE = const(1)
_C_WORD = const(2)   # numbers and true/false/null: json.loads checks their spelling
_C_IDENT = const(3)  # letters and _: a word, or in relaxed mode the start of a bare key
_C_QUOTE = const(4)
_C_OPEN = const(5)
_C_CLOSE = const(6)
_C_COLON = const(7)
_C_COMMA = const(8)


_CLASS = (  # byte -> class, 16 bytes a row; a constant, so frozen it stays in flash (test_inputs checks it)
    b"\0\0\0\0\0\0\0\0\0\x01\x01\0\0\x01\0\0"
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    b"\x01\0\x04\0\0\0\0\0\0\0\0\x02\x08\x02\x02\0"
    b"\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x07\0\0\0\0\0"
    b"\0\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03"
    b"\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x05\0\x06\0\x03"
    b"\0\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03"
    b"\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x05\0\x06\0\0"
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")


def _bad(i):
    raise JsonError("not valid JSON (at byte %d)" % i)


def _string_end(data, i):
    """Index of the quote closing the string whose content starts at i (C-speed find, not a byte loop)."""
    while True:
        j = data.find(b'"', i)
        if j < 0:
            raise JsonError("not valid JSON (incomplete)")
        k = j - 1
        while data[k] == _BACKSLASH:
            k -= 1
        if (j - 1 - k) & 1 == 0:  # an even number of backslashes: the quote is not escaped
            return j
        i = j + 1


def scan(data, max_depth=MAX_DEPTH, max_keys=MAX_KEYS, relaxed=False):
    """Check structure and limits of one JSON text (bytes) in one pass. -> data, or in relaxed mode a copy
    with bare keys quoted. Raises JsonError naming the limit or the byte where the structure broke."""
    out = bytearray() if relaxed else None
    cls = _CLASS
    kinds = bytearray(max_depth)  # the open containers: _OBJ or _ARR
    depth = 0
    keys = 0
    state = _VALUE
    n = len(data)
    i = 0
    while i < n:
        b = data[i]
        c = cls[b]
        if c == _C_SPACE:
            i += 1
            continue
        if c == _C_QUOTE:
            if state == _FIRST_KEY or state == _KEY:
                state = _COLON_NEXT
            elif state <= _FIRST_VALUE:
                state = _NEXT if depth else _DONE
            else:
                _bad(i)
            j = _string_end(data, i + 1) + 1
            if out is not None:
                out.extend(data[i:j])
            i = j
            continue
        if c == _C_WORD or c == _C_IDENT:
            j = i + 1
            while j < n and (cls[data[j]] == _C_WORD or cls[data[j]] == _C_IDENT):
                j += 1
            if j - i > MAX_NUMBER:
                raise JsonLimit("JSON number longer than %d characters" % MAX_NUMBER)
            if out is not None and c == _C_IDENT and (state == _FIRST_KEY or state == _KEY):
                out.append(_QUOTE)  # a bare key, as the documentation's ctl example writes it
                out.extend(data[i:j])
                out.append(_QUOTE)
                state = _COLON_NEXT
            elif state <= _FIRST_VALUE:
                if out is not None:
                    out.extend(data[i:j])
                state = _NEXT if depth else _DONE
            else:
                _bad(i)
            i = j
            continue
        if out is not None:
            out.append(b)
        if c == _C_OPEN:
            if state > _FIRST_VALUE:
                _bad(i)
            if depth >= max_depth:
                raise JsonLimit("JSON nested deeper than %d levels" % max_depth)
            kinds[depth] = b
            depth += 1
            state = _FIRST_KEY if b == _OBJ else _FIRST_VALUE
        elif c == _C_CLOSE:
            if not depth or kinds[depth - 1] != b - 2 or \
                    not (state == _NEXT or state == (_FIRST_KEY if b == _OBJ_END else _FIRST_VALUE)):
                _bad(i)
            depth -= 1
            state = _NEXT if depth else _DONE
        elif c == _C_COLON:
            if state != _COLON_NEXT:
                _bad(i)
            keys += 1
            if keys > max_keys:
                raise JsonLimit("JSON with more than %d keys" % max_keys)
            state = _VALUE
        elif c == _C_COMMA:
            if state != _NEXT:
                _bad(i)
            state = _KEY if kinds[depth - 1] == _OBJ else _VALUE
        else:
            _bad(i)
        i += 1
    if state != _DONE:
        raise JsonError("not valid JSON (incomplete)")
    return data if out is None else bytes(out)


def loads(data, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, max_keys=MAX_KEYS, relaxed=False):
    """data: bytes (parsed in place), or str, bytearray, memoryview (copied to bytes once). -> the parsed
    value; raises JsonError with a message that names what was wrong (too large, too deep, too many keys, a
    too long number, not UTF-8, not valid JSON)."""
    if isinstance(data, str):
        data = data.encode()
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise JsonError("expected a JSON text")
    if len(data) > max_bytes:
        raise JsonLimit("JSON larger than %d bytes (got %d)" % (max_bytes, len(data)))
    data = scan(data, max_depth, max_keys, relaxed)
    try:
        return json.loads(data)  # bytes: both parsers check the UTF-8 of the strings, no decoded copy
    except UnicodeError:
        raise JsonError("JSON is not UTF-8")
    except (ValueError, TypeError, IndexError, KeyError, RuntimeError):
        raise JsonError("not valid JSON")


def load_config(text):
    """The installer's config.json, under the configuration's limits (read it as bytes: no copy)."""
    return loads(text, CONFIG_BYTES, MAX_DEPTH, CONFIG_KEYS)
