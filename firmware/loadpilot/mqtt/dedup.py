# Duplicate detection for incoming commands. A broker resends a QoS 1 PUBLISH (same packet id, DUP set) when
# our PUBACK did not reach it, and some brokers (ioBroker's, per the MQTT seed) send a PUBLISH twice. The
# command layer asks `is_duplicate(msg, now_ms)` before executing so a message delivered twice runs once.
import time
from micropython import const

_SIZE = const(16)


def _digest(topic, payload):
    # MicroPython hashes str/bytes in C; cheap for a 4 KB payload and stable within one process
    if payload is None:  # an oversize message the client skipped (client.Message)
        return hash(topic) & 0x3FFFFFFF
    return (hash(topic) * 31 + hash(bytes(payload)) + len(payload)) & 0x3FFFFFFF


class Dedup:
    """Remembers the last `size` QoS>0 messages as (packet id, digest, time). A message is a duplicate when
    the same packet id with the same topic+payload was seen within window_ms. With qos0_window_ms > 0, QoS 0
    messages with identical topic+payload inside that window count as duplicates too (off by default: a
    QoS 0 repeat may be intended)."""

    def __init__(self, size=_SIZE, window_ms=30000, qos0_window_ms=0):
        self.size = size
        self.window_ms = window_ms
        self.qos0_window_ms = qos0_window_ms
        self._pid = [0] * size
        self._dig = [0] * size
        self._at = [0] * size
        self._used = [False] * size
        self._next = 0
        self.duplicates = 0

    def is_duplicate(self, msg, now_ms=None):
        """msg has .topic, .payload, .qos, .pid. Records it when new."""
        if now_ms is None:
            now_ms = time.ticks_ms()
        if msg.qos == 0:
            window = self.qos0_window_ms
            if window <= 0:
                return False
        else:
            window = self.window_ms
        d = _digest(msg.topic, msg.payload)
        pid = msg.pid
        for i in range(self.size):
            if (self._used[i] and self._pid[i] == pid and self._dig[i] == d
                    and time.ticks_diff(now_ms, self._at[i]) < window):
                self.duplicates += 1
                return True
        j = self._next
        self._pid[j] = pid
        self._dig[j] = d
        self._at[j] = now_ms
        self._used[j] = True
        self._next = (j + 1) % self.size
        return False
