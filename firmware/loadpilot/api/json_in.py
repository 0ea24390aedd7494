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
    pass


def _ident_start(b):
    return 97 <= b <= 122 or 65 <= b <= 90 or b == 95  # a-z A-Z _


def _ident(b):
    return 97 <= b <= 122 or 65 <= b <= 90 or b == 95 or 48 <= b <= 57


def _word(b):
    # numbers and true/false/null: json.loads checks their spelling
    return 48 <= b <= 57 or 97 <= b <= 122 or 65 <= b <= 90 or b == 45 or b == 43 or b == 46


def _space(b):
    return b == 32 or b == 9 or b == 10 or b == 13


def _bad(i):
    raise JsonError("not valid JSON (at byte %d)" % i)


def scan(data, max_depth=MAX_DEPTH, max_keys=MAX_KEYS, relaxed=False):
    """Check structure and limits of one JSON text in one pass over its bytes. -> data, or in relaxed mode
    a copy with bare keys quoted. Raises JsonError naming the limit or the byte where the structure broke."""
    out = bytearray() if relaxed else None
    kinds = bytearray(max_depth)  # the open containers: _OBJ or _ARR
    depth = 0
    keys = 0
    word = 0  # length of the number or literal being read; 0 outside one
    in_str = False
    esc = False
    state = _VALUE
    n = len(data)
    i = 0
    while i < n:
        b = data[i]
        i += 1
        if in_str:
            if esc:
                esc = False
            elif b == _BACKSLASH:
                esc = True
            elif b == _QUOTE:
                in_str = False
            if out is not None:
                out.append(b)
            continue
        if word:
            if _word(b):
                word += 1
                if word > MAX_NUMBER:
                    raise JsonError("JSON number longer than %d characters" % MAX_NUMBER)
                if out is not None:
                    out.append(b)
                continue
            word = 0
        if out is not None:
            if (state == _FIRST_KEY or state == _KEY) and _ident_start(b):
                j = i
                while j < n and _ident(data[j]):
                    j += 1
                out.append(_QUOTE)
                out.extend(data[i - 1:j])
                out.append(_QUOTE)
                i = j
                state = _COLON_NEXT
                continue
            out.append(b)
        if _space(b):
            continue
        if b == _QUOTE:
            in_str = True
            if state == _FIRST_KEY or state == _KEY:
                state = _COLON_NEXT
            elif state <= _FIRST_VALUE:
                state = _NEXT if depth else _DONE
            else:
                _bad(i - 1)
        elif _word(b):
            if state > _FIRST_VALUE:
                _bad(i - 1)
            word = 1
            state = _NEXT if depth else _DONE
        elif b == _OBJ or b == _ARR:
            if state > _FIRST_VALUE:
                _bad(i - 1)
            if depth >= max_depth:
                raise JsonError("JSON nested deeper than %d levels" % max_depth)
            kinds[depth] = b
            depth += 1
            state = _FIRST_KEY if b == _OBJ else _FIRST_VALUE
        elif b == _OBJ_END or b == _ARR_END:
            if not depth or kinds[depth - 1] != b - 2 or \
                    not (state == _NEXT or state == (_FIRST_KEY if b == _OBJ_END else _FIRST_VALUE)):
                _bad(i - 1)
            depth -= 1
            state = _NEXT if depth else _DONE
        elif b == _COLON:
            if state != _COLON_NEXT:
                _bad(i - 1)
            keys += 1
            if keys > max_keys:
                raise JsonError("JSON with more than %d keys" % max_keys)
            state = _VALUE
        elif b == _COMMA:
            if state != _NEXT:
                _bad(i - 1)
            state = _KEY if kinds[depth - 1] == _OBJ else _VALUE
        else:
            _bad(i - 1)
    if in_str or state != _DONE:
        raise JsonError("not valid JSON (incomplete)")
    return data if out is None else bytes(out)


def loads(data, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, max_keys=MAX_KEYS, relaxed=False):
    """data: str, bytes, bytearray or memoryview. -> the parsed value; raises JsonError with a message that
    names what was wrong (too large, too deep, too many keys, a too long number, not UTF-8, not valid JSON)."""
    if isinstance(data, str):
        data = data.encode()
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise JsonError("expected a JSON text")
    if len(data) > max_bytes:
        raise JsonError("JSON larger than %d bytes (got %d)" % (max_bytes, len(data)))
    data = scan(data, max_depth, max_keys, relaxed)
    try:
        text = data.decode()
    except UnicodeError:
        raise JsonError("JSON is not UTF-8")
    try:
        return json.loads(text)
    except (ValueError, TypeError, IndexError, KeyError, RuntimeError):
        raise JsonError("not valid JSON")


def load_config(text):
    """The installer's config.json, under the configuration's limits."""
    return loads(text, CONFIG_BYTES, MAX_DEPTH, CONFIG_KEYS)
