# Resolve a host name without blocking the loop: one DNS A query on a non-blocking UDP socket, awaited with a
# timeout. socket.getaddrinfo would hold the whole loop while lwIP's resolver waits for its server (seconds on
# the ESP32; tools/bench/ocpp_client.py measures both), so it is used only for numeric addresses, which it answers
# at once. Every client that connects by name uses it (OCPP, MQTT); the OCPP client resolves again on every
# reconnect, because backends move, MQTT when a connect fails.
import socket


def is_numeric(host):
    if ":" in host:
        return True
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


async def resolve(host, port, server, timeout_ms=3000, tries=2):
    """-> (family, sockaddr) for host:port. server: the DNS server's "ip" or "ip:port", or None (then
    getaddrinfo, which blocks for a name: only for boards that cannot say their DNS server)."""
    if is_numeric(host) or not server or host == "localhost":
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        return ai[0], ai[-1]
    from loadpilot import dns_query  # the query code only where a name is asked for (0.3 KB frozen)
    return await dns_query.resolve(host, port, server, timeout_ms, tries)
