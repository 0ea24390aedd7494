# Runs on the MicroPython binary for tools/bench/ocpp_client.py (argv: firmware dir or .mpy tree, scratch dir,
# part).
# Prints one JSON line per figure.
import asyncio
import gc
import json
import socket
import sys
import time

import micropython

sys.path.insert(0, sys.argv[1])


def out(**kw):
    print(json.dumps(kw))


# ---- masking: ours (in place) against a byte-by-byte copy, and a viper loop defined here only -----------------
def naive_mask(data, key):
    # what MicroPython WebSocket packages do: a new bytes object built one byte at a time
    return bytes(b ^ key[i & 3] for i, b in enumerate(data))


@micropython.viper
def viper_mask(buf: ptr8, start: int, n: int, key: ptr8):
    i = 0
    while i < n:
        buf[start + i] = buf[start + i] ^ key[i & 3]
        i += 1


def measure(fn, reps, rounds=5):
    # the fastest of a few rounds (a shared host preempts now and then), and the most any round allocated
    best = None
    most = 0
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        t0 = time.ticks_us()
        for _ in range(reps):
            fn()
        us = time.ticks_diff(time.ticks_us(), t0)
        alloc = gc.mem_alloc() - a0
        gc.enable()
        best = us if best is None or us < best else best
        most = alloc if alloc > most else most
    return best / reps, most / reps


def bench_mask():
    from loadpilot.ocpp.ws import mask_into
    n = 1024
    buf = bytearray(n + 4)
    buf[0:4] = b"\x12\x34\x56\x78"
    data = bytes(range(256)) * 4
    key = bytes(buf[0:4])
    kb = bytearray(key)
    reps = 50
    us, alloc = measure(lambda: mask_into(buf, 4, n, 0), reps)
    out(figure="mask_ours", us_per_kb=round(us, 1), bytes_alloc_per_kb=round(alloc))
    us, alloc = measure(lambda: naive_mask(data, key), 10)
    out(figure="mask_naive", us_per_kb=round(us, 1), bytes_alloc_per_kb=round(alloc))
    us, alloc = measure(lambda: viper_mask(buf, 4, n, kb), reps)
    out(figure="mask_viper", us_per_kb=round(us, 1), bytes_alloc_per_kb=round(alloc))
    # the same result both ways
    a = bytearray(4) + bytearray(data)
    a[0:4] = key
    mask_into(a, 4, n, 0)
    assert bytes(a[4:]) == naive_mask(data, key)


class Sink:
    out_buf = b""

    def __init__(self):
        self.n = 0

    def write(self, buf):
        self.n += len(buf)

    async def drain(self):
        pass


def bench_send():
    from loadpilot.ocpp.ws import WebSocket
    w = WebSocket(4096)
    w._stream = Sink()
    payload = b'[2,"1a","StatusNotification",{"connectorId":1,"status":"Charging","errorCode":"NoError"}]'

    async def run(reps):
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        for _ in range(reps):
            await w.send(payload)
        a = gc.mem_alloc() - a0
        gc.enable()
        return a / reps
    asyncio.run(run(5))
    out(figure="ws_send_frame", payload_bytes=len(payload), bytes_alloc_per_frame=round(asyncio.run(run(100))))


# ---- resident heap of the OCPP client -------------------------------------------------------------------------
class FakeHal:
    def dns_server(self):
        return None

    def serial(self):
        return "bench"

    def reset(self):
        pass


def bench_heap():
    from loadpilot.config.store import Store
    from loadpilot.log import Log
    from loadpilot.site import Site
    log = Log()
    store = Store(sys.argv[2], log)
    site = Site()
    gc.collect()
    free0 = gc.mem_free()
    from loadpilot.ocpp.service import OcppService
    gc.collect()
    free1 = gc.mem_free()
    svc = OcppService(store, site, log, FakeHal(), None, "bench", "0.0")
    gc.collect()
    free2 = gc.mem_free()
    # transactions (ocpp/tx.py + outbox.py) on the session journal the app has anyway, outbox empty
    from loadpilot.sessions.journal import Journal
    from loadpilot.sessions.tracker import SessionTracker
    tracker = SessionTracker(site, Journal(sys.argv[2], log), log)
    gc.collect()
    free3 = gc.mem_free()
    __import__("loadpilot.ocpp.tx")
    gc.collect()
    free4 = gc.mem_free()
    svc.attach_sessions(tracker, sys.argv[2])
    gc.collect()
    free5 = gc.mem_free()
    # smart charging (ocpp/charging.py + smart.py): loaded by the first profile; one TxDefaultProfile of 3 periods
    __import__("loadpilot.ocpp.smart")
    gc.collect()
    free6 = gc.mem_free()
    svc.core.answer("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 10}, {"startPeriod": 3600, "limit": 16}, {"startPeriod": 7200, "limit": 6}]}}})
    gc.collect()
    free7 = gc.mem_free()
    out(figure="charging", import_bytes=free5 - free6, profile_bytes=free6 - free7)
    # clock-aligned MeterValues (ocpp/aligned.py): imported by the first poll with ClockAlignedDataInterval set;
    # then a poll between two boundaries must allocate nothing
    store.set("ocpp_aligned_interval_s", 900)
    gc.collect()
    free8 = gc.mem_free()
    svc.tx.poll()
    gc.collect()
    free9 = gc.mem_free()
    gc.collect()
    a0 = gc.mem_alloc()
    for _ in range(100):
        svc.tx.poll()
    a1 = gc.mem_alloc()
    out(figure="aligned", import_bytes=free8 - free9, poll_alloc_bytes=a1 - a0)
    # one MeterValues message: the sample tuple, its payload with every measurand, its JSON text (what goes out)
    from loadpilot import codes
    from loadpilot.ocpp import core as ocore
    store.set("ocpp_meter_measurands", ",".join(codes.OCPP_MEASURANDS))
    tx = svc.tx

    def one():
        m = (None, 1795000000, 123456, 11040, (16000, 16000, 16000), 16000, (230, 231, 229), "Sample.Periodic",
             "ocpp_meter_measurands")
        return ocore.call("123", "MeterValues", tx.meter_payload(m))
    text = one()
    gc.collect()
    a0 = gc.mem_alloc()
    for _ in range(10):
        one()
    a1 = gc.mem_alloc()
    out(figure="meter_values", alloc_bytes=(a1 - a0) // 10, text_bytes=len(text),
        sampled_values=len(tx.meter_payload((None, 0, 1, 1, (1, 1, 1), 1, (230, 230, 230), "Sample.Periodic",
                                             "ocpp_meter_measurands"))["meterValue"][0]["sampledValue"]))
    out(figure="heap", import_bytes=free0 - free1, construct_bytes=free1 - free2, total_bytes=free0 - free2,
        buffers_bytes=len(svc._ws.rbuf) + len(svc._ws._cbuf),
        tx_import_bytes=free3 - free4, tx_construct_bytes=free4 - free5)


# ---- DNS: getaddrinfo's stall against our resolver's, next to a 5 ms ticker ---------------------------------
def bench_dns(port):
    for host in ("127.0.0.1", "localhost", "no-such-host.invalid"):
        t0 = time.ticks_us()
        try:
            socket.getaddrinfo(host, 80)
        except OSError:
            pass
        out(figure="getaddrinfo", host=host, stall_us=time.ticks_diff(time.ticks_us(), t0))
    from loadpilot import dns
    worst = [0]

    async def ticker():
        last = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(5)
            now = time.ticks_ms()
            late = time.ticks_diff(now, last) - 5
            if late > worst[0]:
                worst[0] = late
            last = now

    async def main():
        t = asyncio.create_task(ticker())
        await asyncio.sleep_ms(20)
        t0 = time.ticks_ms()
        try:
            await dns.resolve("backend.example", 80, "127.0.0.1:%d" % port, 2000)
            res = "answered"
        except OSError as e:
            res = str(e)
        took = time.ticks_diff(time.ticks_ms(), t0)
        t.cancel()
        out(figure="dns_ours_silent_server", took_ms=took, worst_loop_stall_ms=worst[0], result=res)
    asyncio.run(main())


def bench_modules():
    # each module's own share, imported in dependency order after what the app has loaded anyway
    from loadpilot.config.store import Store  # noqa: F401
    from loadpilot.site import Site  # noqa: F401
    import ssl  # noqa: F401 (the port's TLS module, loaded by wss connections)
    # the resident ones, then what a connect loads and releases again (ocpp/dial.py with url.py and tls.py)
    for m in ("loadpilot.ocpp", "loadpilot.dns", "loadpilot.tcp", "loadpilot.ocpp.ws", "loadpilot.ocpp.core",
              "loadpilot.ocpp.service", "loadpilot.ocpp.url", "loadpilot.ocpp.dial", "loadpilot.ocpp.tls"):
        gc.collect()
        f = gc.mem_free()
        __import__(m)
        gc.collect()
        out(figure="module", module=m, bytes=f - gc.mem_free())


part = sys.argv[3]
if part == "mask":
    bench_mask()
    bench_send()
elif part == "heap":
    bench_heap()
elif part == "modules":
    bench_modules()
elif part == "dns":
    bench_dns(int(sys.argv[4]))
