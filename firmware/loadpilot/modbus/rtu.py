# Modbus RTU framing on one UART, shared by the slave and the master.
#
# A frame is unit id + PDU + CRC16 (low byte first), at most 256 bytes. Frames are delimited by silence: a
# frame ends after t3.5 without a byte, and a gap longer than t1.5 inside a frame breaks it (the frame is
# then dropped when it ends). Frames with a bad CRC, overlong frames and runts are dropped silently and
# counted; whatever arrives after the next t3.5 of silence starts afresh, which is how garbage on the line
# resynchronises.
#
# Gap detection is evidence-based: we only know the line was silent when we polled and found nothing. A gap
# counts when a poll found the receive buffer empty more than t1.5 after the last byte we read and then more
# bytes came before t3.5 had passed. A late poll (loop lag, a pty on a busy host) therefore never invents a
# gap, it can only miss one. Ports whose driver hands bytes over in bursts (a UART FIFO with an rx timeout
# of several characters) must pass check_gaps=False.
import asyncio
import time

from loadpilot.modbus.crc import append_crc, check as _crc_ok

MAX_FRAME = 256
MIN_FRAME = 4  # unit + function code + CRC
_CHUNK = 32


class RtuPort:
    """One RS485 UART with RTU framing. poll() assembles received frames; begin_send()/end_send() bracket a
    transmission (the caller awaits the wire time in between, see send())."""

    def __init__(self, uart, t35_us, t15_us, check_gaps=True):
        self.uart = uart
        self.t35_us = t35_us
        self.t15_us = t15_us
        self.check_gaps = check_gaps
        self.char_us = getattr(uart, "char_us", 1042)
        self.rx = bytearray(MAX_FRAME)
        self.tx = bytearray(MAX_FRAME)
        self._chunk = bytearray(_CHUNK)
        self._tx_views = [None] * (MAX_FRAME + 1)  # memoryview(tx)[:n], made once per length
        self._txmv = memoryview(self.tx)
        self.rx_len = 0
        self._overlong = False
        self._gap = False
        self._last_rx_us = time.ticks_us()
        self._idle_us = self._last_rx_us
        self._idle_seen = False
        self.line_free_us = self._last_rx_us  # when the line last went quiet (end of our TX or of an RX byte)
        # counters, for diagnostics and the master's statistics
        self.frames = 0
        self.crc_errors = 0
        self.gap_errors = 0
        self.overlong = 0
        self.runts = 0

    # -- receiving -----------------------------------------------------------------------------------------
    def _read_available(self, now):
        uart = self.uart
        chunk = self._chunk
        got_any = False
        while uart.any():
            n = uart.readinto(chunk, _CHUNK)
            if n <= 0:
                break
            if not got_any:
                got_any = True
                if (self.rx_len or self._overlong) and self._idle_seen and self.check_gaps:
                    if time.ticks_diff(self._idle_us, self._last_rx_us) > self.t15_us:
                        self._gap = True
            pos = self.rx_len
            rx = self.rx
            if pos + n > MAX_FRAME:
                self._overlong = True
                n = MAX_FRAME - pos
            for i in range(n):
                rx[pos + i] = chunk[i]
            self.rx_len = pos + n
        if got_any:
            self._last_rx_us = now
            self.line_free_us = now
            self._idle_seen = False
        return got_any

    def poll(self):
        """Read what the UART holds. Returns the length of a complete frame with a good CRC in self.rx (valid
        until the next poll or reset), else 0."""
        now = time.ticks_us()
        if self._read_available(now):
            return 0
        if self.rx_len == 0 and not self._overlong:
            return 0
        if time.ticks_diff(now, self._last_rx_us) < self.t35_us:
            self._idle_us = now
            self._idle_seen = True
            return 0
        return self._finish()

    def complete_now(self, expected_len):
        """The master knows how long an answer will be: accept it as soon as it is all there with a good CRC
        (no need to wait t3.5). Returns the frame length or 0."""
        n = self.rx_len
        if n != expected_len or self._overlong or self._gap:
            return 0
        if not _crc_ok(self.rx, n):
            return 0
        self.frames += 1
        self._clear()
        return n

    def _finish(self):
        n = self.rx_len
        if self._overlong:
            self.overlong += 1
            n = 0
        elif self._gap:
            self.gap_errors += 1
            n = 0
        elif n < MIN_FRAME:
            self.runts += 1
            n = 0
        elif not _crc_ok(self.rx, n):
            self.crc_errors += 1
            n = 0
        else:
            self.frames += 1
        self._clear()
        return n

    def _clear(self):
        self.rx_len = 0
        self._overlong = False
        self._gap = False
        self._idle_seen = False

    def discard_input(self):
        """Drop a partial frame and whatever is waiting in the UART (a master does this before a request)."""
        now = time.ticks_us()
        self._read_available(now)
        self._clear()

    # -- sending -------------------------------------------------------------------------------------------
    def silence_left_us(self, min_silence_us):
        """How much longer the line must stay quiet before we may transmit."""
        left = min_silence_us - time.ticks_diff(time.ticks_us(), self.line_free_us)
        return left if left > 0 else 0

    def seal(self, n):
        """Append the CRC to tx[0:n]; returns the frame length."""
        return append_crc(self.tx, n)

    def tx_view(self, n):
        v = self._tx_views[n]
        if v is None:
            v = self._txmv[:n]
            self._tx_views[n] = v
        return v

    def begin_send(self, n):
        self.uart.set_de(1)
        self.uart.write(self.tx_view(n))

    def end_send(self):
        self.uart.set_de(0)
        self.line_free_us = time.ticks_us()

    def wire_ms(self, n):
        return n * self.char_us // 1000


async def send(port, n):
    """Transmit tx[0:n]: the same sequence as hal.rs485_send (DE high, write, wait for the last stop bit,
    DE low), but sleeping through the wire time instead of spinning, and allocation-free when the caller
    inlines it (the slave does; calling a coroutine allocates its frame)."""
    port.begin_send(n)
    await asyncio.sleep_ms(port.wire_ms(n))
    while not port.uart.tx_done():
        await asyncio.sleep_ms(0)
    port.end_send()


def response_len(rx, n):
    """Expected length of an answer frame from its first bytes, or 0 when not known yet / not knowable."""
    if n < 2:
        return 0
    fc = rx[1]
    if fc & 0x80:
        return 5
    if fc in (1, 2, 3, 4, 0x17):
        return 5 + rx[2] if n >= 3 else 0
    if fc in (5, 6, 15, 16):
        return 8
    return 0

