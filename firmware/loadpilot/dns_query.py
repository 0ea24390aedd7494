# The DNS query on the wire for dns.py: one A query on a non-blocking UDP socket, awaited with a timeout.
# Imported by dns.resolve only for a host name, so a client that connects to a numeric address (a broker on the
# LAN) does not hold this code in RAM.
import asyncio
import socket
import struct


class DnsError(OSError):
    pass


def query(name, qid):
    """A recursive query for the A record of name (bytes)."""
    out = [struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)]
    for label in name.encode().split(b"."):
        if not label or len(label) > 63:
            raise DnsError("bad host name")
        out.append(bytes((len(label),)))
        out.append(label)
    out.append(b"\x00\x00\x01\x00\x01")
    return b"".join(out)


def _skip_name(msg, i):
    while True:
        n = msg[i]
        if n >= 0xC0:  # compression pointer: two bytes, end of this name
            return i + 2
        if n == 0:
            return i + 1
        i += n + 1


def answer(msg, qid):
    """The first IPv4 address in a DNS answer to query qid, as a dotted string; DnsError otherwise."""
    if len(msg) < 12:
        raise DnsError("short DNS answer")
    rid, flags, qd, an = struct.unpack_from(">HHHH", msg, 0)
    if rid != qid or not flags & 0x8000:
        raise DnsError("not our DNS answer")
    if flags & 0x0F:
        raise DnsError("DNS error %d (%s)" % (flags & 0x0F, "no such name" if flags & 0x0F == 3 else "server"))
    i = 12
    try:
        for _ in range(qd):
            i = _skip_name(msg, i) + 4
        for _ in range(an):
            i = _skip_name(msg, i)
            typ, cls, _, rdlen = struct.unpack_from(">HHIH", msg, i)
            i += 10
            if typ == 1 and cls == 1 and rdlen == 4:
                return "%d.%d.%d.%d" % (msg[i], msg[i + 1], msg[i + 2], msg[i + 3])
            i += rdlen
    except (IndexError, ValueError):
        raise DnsError("malformed DNS answer")
    raise DnsError("no IPv4 address for the name")


def _wait_readable(s):
    from asyncio import core
    yield core._io_queue.queue_read(s)


async def resolve(host, port, server, timeout_ms, tries):
    """dns.resolve for a host name: ask server (ip or ip:port); DnsError after timeout_ms."""
    sip, _, sport = server.partition(":")
    dst = socket.getaddrinfo(sip, int(sport or 53), 0, socket.SOCK_DGRAM)[0][-1]
    import random
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        for _ in range(tries):
            qid = random.getrandbits(16)
            s.sendto(query(host, qid), dst)
            try:
                while True:
                    await asyncio.wait_for_ms(_wait_readable(s), timeout_ms // tries)
                    msg = s.recv(512)
                    try:
                        ip = answer(msg, qid)
                    except DnsError as e:
                        if "not our" in str(e):
                            continue  # a late answer to an earlier try
                        raise
                    ai = socket.getaddrinfo(ip, port, 0, socket.SOCK_STREAM)[0]
                    return ai[0], ai[-1]
            except asyncio.TimeoutError:
                pass
        raise DnsError("no answer from DNS server %s for %s within %d ms" % (server, host, timeout_ms))
    finally:
        s.close()
