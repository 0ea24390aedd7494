# get_dev_info as a stream whose length is known before its bytes exist (MQTT sends the length first), never
# held whole: the document is rendered twice, piece by piece (the params, then one device at a time). The first
# pass measures each piece and reserves PAD more bytes for it; the second renders each piece again as it is sent
# and fills the rest of its reservation with spaces (JSON whitespace), so values that grew in between still fit.
# The peak is one device's JSON (about 600 bytes) whatever the number of devices; a snapshot of the whole
# document was 26 KB for 50 devices, held while it and the 50 get/<dev_id> topics went out.
import json

from loadpilot.redact import redact

PAD = 48  # room per piece for figures that grow between the passes (a car starting: currents, power, state)
_SPACES = b"                                                "  # PAD spaces: a constant, no allocation
_HEAD = b'{"params":'
_MID = b',"devices":['
_TAIL = b"]}"


class DevInfoStream:
    def __init__(self, info):
        self.info = info
        self.devs = info.configs()  # the device list of this document, fixed for both passes and any resend
        self.sizes = None
        self.length = None

    def piece(self, i):
        """Piece i as UTF-8: 0 the params, i >= 1 device i-1. Every published byte passes the one redaction."""
        info = self.info
        p = json.dumps(info.params() if i == 0 else info.device(self.devs[i - 1])).encode()
        if b"://" in p and b"@" in p:
            p = redact(p.decode()).encode()
        return p

    def measure(self):
        """Pass 1: yields (device index, or -1 for the params, its bytes) and sets sizes and length."""
        sizes = self.sizes = []
        n = len(_HEAD) + len(_MID) + len(_TAIL) + (len(self.devs) - 1 if self.devs else 0)
        for i in range(len(self.devs) + 1):
            b = self.piece(i)
            sizes.append(len(b) + PAD)
            n += len(b) + PAD
            yield i - 1, b
        self.length = n

    def parts(self):
        """Pass 2 (again for a QoS 1 resend): exactly `length` bytes. A piece that grew by more than PAD since
        it was measured goes out as null, so the document stays valid JSON of the announced length."""
        yield _HEAD
        for i in range(len(self.sizes)):
            if i == 1:
                yield _MID
            elif i > 1:
                yield b","
            b = self.piece(i)
            room = self.sizes[i]
            if len(b) > room:
                b = b"null"
            yield b
            k = room - len(b)
            while k > 0:
                m = k if k < PAD else PAD
                yield _SPACES[:m]
                k -= m
        if len(self.sizes) == 1:
            yield _MID
        yield _TAIL

    def chunks(self):
        """One pass without a length, for a transport that frames chunks itself (HTTP chunked encoding): the
        same pieces, no reservation, no padding."""
        yield _HEAD
        for i in range(len(self.devs) + 1):
            if i == 1:
                yield _MID
            elif i > 1:
                yield b","
            yield self.piece(i)
        if not self.devs:
            yield _MID
        yield _TAIL
