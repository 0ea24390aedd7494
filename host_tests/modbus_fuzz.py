"""Malformed Modbus input, one generator for every fuzzer: the CPython unit test draws it through hypothesis
(unit/test_modbus_fuzz.py), the firmware fuzzers through random.Random (integration/test_fuzz_mp.py and
tools/bench/fuzz.py, which also use the runners below against the booted firmware: TCP frames over sockets,
RTU frames over a pty)."""
import random
import socket
import struct
import time

FCS = (1, 2, 3, 4, 5, 6, 15, 16, 0x2B, 0x83, 0, 255)
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class RandomSource:
    """The draws make_pdu needs, from a seeded random.Random."""

    def __init__(self, seed):
        self.r = random.Random(seed)

    def integer(self, lo, hi):
        return self.r.randint(lo, hi)

    def boolean(self):
        return self.r.random() < 0.5

    def binary(self, lo, hi):
        return self.r.randbytes(self.r.randint(lo, hi))

    def choice(self, seq):
        return self.r.choice(seq)


class DrawSource:
    """The same draws through hypothesis (inside an @st.composite), so failures shrink."""

    def __init__(self, draw):
        from hypothesis import strategies as st
        self.draw = draw
        self.st = st

    def integer(self, lo, hi):
        return self.draw(self.st.integers(lo, hi))

    def boolean(self):
        return self.draw(self.st.booleans())

    def binary(self, lo, hi):
        return self.draw(self.st.binary(min_size=lo, max_size=hi))

    def choice(self, seq):
        return self.draw(self.st.sampled_from(seq))


def make_pdu(src, addr_lo=90, addr_hi=410):
    """A request PDU: mostly plausible requests with random fields (addresses often near [addr_lo, addr_hi],
    the served map), sometimes raw noise, sometimes cut short."""
    if src.boolean():
        return src.binary(1, 40)
    fc = src.choice(FCS)
    addr = src.integer(0, 0xFFFF) if src.boolean() else src.integer(addr_lo, addr_hi)
    qty = src.integer(0, 0xFFFF) if src.boolean() else src.integer(0, 130)
    body = struct.pack(">BHH", fc, addr, qty)
    if fc in (15, 16):
        nbytes = (qty * 2 & 0xFF) if src.boolean() else src.integer(0, 255)
        body += bytes([nbytes]) + src.binary(0, 250)
    return body[:src.integer(1, len(body))] if src.integer(0, 9) == 0 else body


def mbap(tid, unit, pdu, proto=0, length=None):
    return struct.pack(">HHHB", tid, proto, len(pdu) + 1 if length is None else length, unit) + pdu


def broken_header(src):
    """An MBAP frame the server must drop the connection for: protocol id != 0, or length < 2 or > 254."""
    pdu = make_pdu(src)[:253]
    kind = src.integer(0, 2)
    if kind == 0:
        return mbap(src.integer(0, 0xFFFF), 1, pdu, proto=src.integer(1, 0xFFFF))
    if kind == 1:
        return mbap(src.integer(0, 0xFFFF), 1, pdu, length=src.integer(0, 1))
    return mbap(src.integer(0, 0xFFFF), 1, pdu, length=src.integer(255, 0xFFFF))


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu_frame(src, units, addr_lo, addr_hi):
    """An RTU frame: a random PDU to one of units with a right CRC (most), a wrong one, or line noise.
    -> (frame, expects_answer): an answer is due for a right CRC to a served unit with a PDU that can be framed."""
    kind = src.integer(0, 9)
    if kind == 0:
        return src.binary(1, 64), False
    unit = src.choice(units)
    pdu = make_pdu(src, addr_lo, addr_hi)[:253]
    body = bytes([unit]) + pdu
    crc = crc16(body)
    if kind == 1:
        crc ^= 1 << src.integer(0, 15)
    return body + struct.pack("<H", crc), False


class Counts(dict):
    def add(self, key, n=1):
        self[key] = self.get(key, 0) + n


def _recv_exact(s, n, quickack=False):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    if quickack:  # Linux: ACK at once, or the server's Nagle holds each pipelined answer for our delayed ACK
        s.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    return buf


def _closed(s, timeout):
    s.settimeout(timeout)
    try:
        while True:
            if s.recv(512) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def fuzz_tcp(port, n, seed, units=(1, 1, 1, 2, 2, 9, 0, 255), addr_lo=40000, addr_hi=41100, answer_s=5.0):
    """Send n fuzzed frames to a Modbus TCP server: pipelined batches of well-framed random PDUs (each must
    get one answer with its transaction id, unit and function code), broken MBAP headers (the server must
    close), and raw garbage (we hang up). -> Counts: frames, answered, exceptions, unanswered, wrong,
    dropped (server closed after a broken header), kept (it did not), garbage, connects."""
    src = RandomSource(seed)
    c = Counts(frames=0, answered=0, exceptions=0, unanswered=0, wrong=0, dropped=0, kept=0, garbage=0,
               connects=0)

    def connect():
        c.add("connects")
        s = socket.create_connection(("127.0.0.1", port), timeout=answer_s)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    s = connect()
    tid = 0
    try:
        while c["frames"] < n:
            kind = src.integer(0, 99)
            if kind < 88:
                batch = []
                for _ in range(min(src.integer(1, 12), n - c["frames"])):
                    tid = (tid + 1) & 0xFFFF
                    pdu = make_pdu(src, addr_lo, addr_hi)[:253]
                    batch.append((tid, src.choice(units), pdu))
                data = b"".join(mbap(t, u, p) for t, u, p in batch)
                cuts = sorted(src.integer(1, len(data) - 1) for _ in range(src.integer(0, 2))) if len(data) > 1 else []
                try:
                    prev = 0
                    for cut in cuts + [len(data)]:  # the batch in up to three pieces
                        s.sendall(data[prev:cut])
                        prev = cut
                    for t, u, p in batch:
                        head = _recv_exact(s, 7)
                        rtid, proto, length, runit = struct.unpack(">HHHB", head)
                        rpdu = _recv_exact(s, length - 1, _QUICKACK is not None)
                        if (rtid, runit, proto) != (t, u, 0) or not rpdu or rpdu[0] & 0x7F != p[0] & 0x7F:
                            c.add("wrong")
                        elif rpdu[0] & 0x80:
                            c.add("exceptions")
                        c.add("answered")
                except (OSError, EOFError):
                    c.add("unanswered", len(batch))
                    s.close()
                    s = connect()
                c.add("frames", len(batch))
            elif kind < 94:
                s.sendall(broken_header(src))
                c.add("frames")
                c.add("dropped" if _closed(s, answer_s) else "kept")
                s.close()
                s = connect()
            else:
                try:
                    s.sendall(src.binary(7, 40))
                except OSError:
                    pass
                c.add("frames")
                c.add("garbage")
                s.close()
                s = connect()
    finally:
        s.close()
    return c


def fuzz_rtu(ser, n, seed, units=(1, 1, 2, 0, 9), addr_lo=40000, addr_hi=41100, gap_s=0.004):
    """Write n fuzzed RTU frames to a pyserial port, each followed by a gap longer than t3.5, reading back
    whatever comes. -> Counts: frames, crc_ok (right CRC to a served unit), bytes_back."""
    src = RandomSource(seed)
    c = Counts(frames=0, crc_ok=0, bytes_back=0)
    for _ in range(n):
        frame, _ = rtu_frame(src, units, addr_lo, addr_hi)
        if len(frame) > 3 and frame[0] in (1, 2) and crc16(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]:
            c.add("crc_ok")
        ser.write(frame)
        c.add("frames")
        time.sleep(gap_s)
        c.add("bytes_back", len(ser.read(1024)))
    time.sleep(0.05)
    c.add("bytes_back", len(ser.read(4096)))
    return c


def rtu_request(ser, unit, pdu, expect_len, timeout_s=3.0):
    """One well-formed RTU request after a quiet line; -> the answer frame (CRC checked), or b""."""
    time.sleep(0.02)
    ser.read(4096)
    body = bytes([unit]) + pdu
    ser.write(body + struct.pack("<H", crc16(body)))
    got = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(got) < expect_len:
        got += ser.read(expect_len - len(got))
        if len(got) < expect_len:
            time.sleep(0.002)
    if len(got) >= 4 and crc16(got[:-2]) == struct.unpack("<H", got[-2:])[0]:
        return got
    return b""


def start_firmware(pty, baud=115200):
    """The firmware with its SunSpec server on TCP (a free port) and on RTU (rs485_1 on pty)."""
    import firmware_proc
    fw = firmware_proc.Firmware(env={"LOADPILOT_UART_RS485_1": pty},
                                config={"modbus_tcp_port": firmware_proc.free_port(), "pb_tcp_port": 0,
                                        "modbus_rtu_port": "COM1,%d,8,n,1" % baud})
    fw.start()
    fw.wait_port(fw.sunspec_port)
    return fw


def restarts(fw):
    """Task restarts the supervisor has counted so far, and the tasks' last errors."""
    tasks = fw.status()["tasks"]
    return sum(t["restarts"] for t in tasks), [t["last_error"] for t in tasks if t["last_error"]]


def known_reads_tcp(port):
    """Well-formed reads whose answers the fuzz must not change: the SunSpec header and common model on
    units 1 and 2, and an address outside the map (exception 02)."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for unit, addr, count in ((1, 40000, 70), (2, 40000, 70), (1, 0, 1)):
            s.sendall(mbap(7, unit, struct.pack(">BHH", 3, addr, count)))
            head = _recv_exact(s, 7)
            out.append(_recv_exact(s, struct.unpack(">H", head[4:6])[0] - 1))
    return out


def known_reads_rtu(ser):
    out = []
    for unit, addr, count in ((1, 40000, 70), (2, 40000, 70), (1, 0, 1)):
        got = rtu_request(ser, unit, struct.pack(">BHH", 3, addr, count), 5 + 2 * count if addr else 5)
        out.append(got[1:-2])
    return out
