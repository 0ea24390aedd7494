# Dial a TCP connection without blocking the loop: a non-blocking socket, connect(), then await writability
# under a deadline. That is what asyncio.open_connection awaits, but here the socket stays the caller's and a
# connect that fails, times out or is cancelled closes it rather than leaking it. Every client that dials out
# (OCPP, MQTT) uses it, after loadpilot/dns.py gave the address. MQTT is in the core profile, so this module
# holds one function and no module-level imports: it costs the core no more heap than the copies it replaced.


async def connect(family, addr, timeout_ms):
    """-> a non-blocking socket connected to addr (from dns.resolve). Raises OSError, or asyncio.TimeoutError
    after timeout_ms."""
    import asyncio
    import socket
    from asyncio import core

    def writable():
        yield core._io_queue.queue_write(s)

    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setblocking(False)
        try:
            s.connect(addr)
        except OSError as e:
            if e.args[0] != 115 and e.args[0] != 119:  # EINPROGRESS (Linux 115, lwIP 119)
                raise
        await asyncio.wait_for_ms(writable(), timeout_ms)
    except BaseException:  # an error, the timeout, or the caller's task cancelled
        s.close()
        raise
    return s
