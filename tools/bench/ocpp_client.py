"""OCPP client benchmark on the MicroPython unix binary: `python tools/bench/ocpp_client.py`.

Prints, each figure beside the baseline measured in the same run:
- WebSocket masking: us and bytes allocated per KB for our in-place loop (ocpp/ws.py mask_into), for the
  byte-by-byte copy other MicroPython WebSocket clients make (the baseline), and for a viper loop (defined in
  the bench only: the firmware is frozen as bytecode without -march); bytes allocated per sent frame;
- bytes allocated to build one MeterValues message with every measurand, beside its text's length;
- the resident heap of the OCPP client (import + construction of OcppService, .mpy files as a deploy ships
  them, 64-bit venv binary), beside the 12 KB bar for the 32-bit frozen build (about 1/4 of the 64-bit .mpy
  figure, docs/firmware.md);
- DNS: how long socket.getaddrinfo holds the loop on this host, and the worst loop stall while our resolver
  (loadpilot/dns.py) waits on a DNS server that never answers;
- with the firmware on the binary against the `ocpp` central system: the worst loop stall during a connect
  (ws and wss: the TLS handshake), and during a burst of 100 incoming CALLs with their answer latency, beside
  the 20 ms stall bar and the 1 s answer bar; the time to notice a blackholed backend and to be back after it
  returns.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "host_tests", "integration"))
import firmware_proc  # noqa: E402
import deploy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BAR_32_FROZEN = 12 * 1024
BAR_MS = 20  # DESIGN.md: a loop stall over 20 ms on the host is a bug
RATIO_64_MPY_TO_32_FROZEN = 4  # docs/firmware.md: core profile 64-bit .mpy / 32-bit frozen = 4.24


def run(*args, binary=None):
    script = os.path.join(HERE, "ocpp_client_mp.py")
    p = subprocess.run([binary or firmware_proc.micropython_binary(), script] + list(args),
                       capture_output=True, text=True, timeout=120)
    if p.returncode:
        raise SystemExit(p.stdout + p.stderr)
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def main():
    scratch = tempfile.mkdtemp(prefix="ocpp-bench-")
    mpy = os.path.join(scratch, "mpy")
    os.makedirs(mpy)
    deploy.compile_firmware(mpy)
    figs = {f["figure"]: f for f in run(firmware_proc.FIRMWARE, scratch, "mask")}
    print("WebSocket masking, 1 KB payload (MicroPython %s, 64-bit unix port):" % "venv binary")
    for name, label in (("mask_naive", "baseline: byte-by-byte copy"), ("mask_ours", "ours: in place, bytecode"),
                        ("mask_viper", "viper loop (bench only)")):
        f = figs[name]
        print("  %-30s %8.1f us/KB  %6d bytes allocated/KB" % (label, f["us_per_kb"], f["bytes_alloc_per_kb"]))
    n, o = figs["mask_naive"], figs["mask_ours"]
    print("  ours is %.1fx faster than the baseline and allocates %d bytes instead of %d" %
          (n["us_per_kb"] / max(o["us_per_kb"], 0.1), o["bytes_alloc_per_kb"], n["bytes_alloc_per_kb"]))
    f = figs["ws_send_frame"]
    print("  one StatusNotification frame (%d bytes) sent: %d bytes allocated" %
          (f["payload_bytes"], f["bytes_alloc_per_frame"]))

    frozen32 = os.path.join(ROOT, "build", "unix32", "frozen", "micropython")
    if os.path.exists(frozen32):  # `make firmware` built it: the firmware frozen, at the ESP32's word size
        ff = {x["figure"]: x for x in run(os.path.join(scratch, "none"), scratch, "heap", binary=frozen32)}
        f = ff["heap"]
        print("Resident heap of the OCPP client, 32-bit unix port with the firmware frozen (as on the ESP32): "
              "import %d B + construction %d B = %d B; bar %d B: %s" %
              (f["import_bytes"], f["construct_bytes"], f["total_bytes"], BAR_32_FROZEN,
               "within" if f["total_bytes"] <= BAR_32_FROZEN else "OVER"))
        tx = f["total_bytes"] + f["tx_import_bytes"] + f["tx_construct_bytes"]
        print("  with transactions (ocpp/tx.py + outbox.py, outbox empty): + import %d B + construction %d B = %d B; "
              "bar %d B: %s" % (f["tx_import_bytes"], f["tx_construct_bytes"], tx, BAR_32_FROZEN,
                                "within" if tx <= BAR_32_FROZEN else "OVER"))
        print("  smart charging: import %d B, + %d B with one 3-period profile; clock-aligned MeterValues "
              "(ocpp/aligned.py, only while ClockAlignedDataInterval is not 0): %d B, a poll allocates %d B"
              % (ff["charging"]["import_bytes"], ff["charging"]["profile_bytes"], ff["aligned"]["import_bytes"],
                 ff["aligned"]["poll_alloc_bytes"] // 100))
        mv = ff["meter_values"]
        print("  one MeterValues message with every measurand (%d sampled values, %d B of JSON text): %d B allocated "
              "to build it (sample, payload, text), beside the text itself as the floor" %
              (mv["sampled_values"], mv["text_bytes"], mv["alloc_bytes"]))
        print("  (%s was built from this tree's firmware when `make firmware` last ran: rebuild after changes)"
              % os.path.relpath(frozen32, ROOT))
        mods = run(os.path.join(scratch, "none"), scratch, "modules", binary=frozen32)
        print("  per module (import, 32-bit frozen): " + ", ".join(
            "%s %d B" % (m["module"].split(".")[-1], m["bytes"]) for m in mods[:6]) +
            "; during a connect only (released after it): " + ", ".join(
            "%s %d B" % (m["module"].split(".")[-1], m["bytes"]) for m in mods[6:]) + " (tls for wss:// only)")
    else:
        print("No 32-bit frozen build (make firmware MICROPY_DIR=...): the 32-bit figure below is an estimate")
    figs = {f["figure"]: f for f in run(mpy, scratch, "heap")}
    h, cg, al = figs["heap"], figs["charging"], figs["aligned"]
    est = h["total_bytes"] // RATIO_64_MPY_TO_32_FROZEN
    print("Resident heap of the OCPP client (.mpy, 64-bit): import %d B + construction %d B = %d B "
          "(of which %d B are the WebSocket buffers)" % (h["import_bytes"], h["construct_bytes"],
                                                         h["total_bytes"], h["buffers_bytes"]))
    print("  with transactions (ocpp/tx.py + outbox.py, outbox empty): + import %d B + construction %d B = %d B "
          "in all (before this round's transactions: 56096 B, measured at commit df0ef91 in the same binary)" %
          (h["tx_import_bytes"], h["tx_construct_bytes"],
           h["total_bytes"] + h["tx_import_bytes"] + h["tx_construct_bytes"]))
    print("  smart charging (ocpp/charging.py + smart.py, loaded by the first profile or smart-charging call): import %d B, "
          "+ %d B with one 3-period profile (none before this round)" % (cg["import_bytes"], cg["profile_bytes"]))
    print("  clock-aligned MeterValues (ocpp/aligned.py, loaded only while ClockAlignedDataInterval is not 0): "
          "%d B; a poll between two boundaries allocates %d B (100 polls: %d B; bar 0)"
          % (al["import_bytes"], al["poll_alloc_bytes"] // 100, al["poll_alloc_bytes"]))
    mv = figs["meter_values"]
    print("  one MeterValues message with every measurand (%d sampled values, %d B of JSON text): %d B allocated "
          "to build it" % (mv["sampled_values"], mv["text_bytes"], mv["alloc_bytes"]))
    print("  32-bit frozen estimate: bytecode stays in flash; the buffers do not shrink. Estimate %d B "
          "(64-bit / %d), at most %d B (buffers + the rest / %d); bar %d B" %
          (est, RATIO_64_MPY_TO_32_FROZEN,
           h["buffers_bytes"] + (h["total_bytes"] - h["buffers_bytes"]) // RATIO_64_MPY_TO_32_FROZEN,
           RATIO_64_MPY_TO_32_FROZEN, BAR_32_FROZEN))

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        figs = run(mpy, scratch, "dns", str(silent.getsockname()[1]))
    finally:
        silent.close()
    print("DNS:")
    for f in figs:
        if f["figure"] == "getaddrinfo":
            print("  socket.getaddrinfo(%r): the loop stood still %d us (this host's resolver; on an ESP32 "
                  "lwIP holds the caller until its DNS server answers or its retries run out)" %
                  (f["host"], f["stall_us"]))
        else:
            print("  ours, against a DNS server that never answers: gave up after %d ms, worst loop stall "
                  "%d ms (%s)" % (f["took_ms"], f["worst_loop_stall_ms"], f["result"]))


def _wait(fn, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise SystemExit("timed out waiting")


def _reconnect_stall(fw):
    """Worst loop stall over a whole reconnect (a changed Client ID makes the client reconnect at once)."""
    view = fw.ctl("ocpp")
    fw.ctl("loop_reset")
    fw.ctl("config_set", key="ocpp_client_id", value="CPB%d" % view["connects"])
    _wait(lambda: fw.ctl("ocpp")["connects"] > view["connects"] and fw.ctl("ocpp")["state"] == "connected", 30)
    time.sleep(0.5)
    return fw.status()["loop"]["worst_ms"]


def link():
    from ocpp_peers import Backend, Proxy, make_pki
    import ssl
    print("The client on the binary against the ocpp central system (bars: loop stall %d ms, answer 1 s):" % BAR_MS)
    b = Backend(interval=300).start()
    proxy = Proxy(b)
    cfg = {"modbus_tcp_port": firmware_proc.free_port(), "pb_tcp_port": 0, "ocpp_client_id": "CPB",
           "ocpp_url": "ws://127.0.0.1:%d/ocpp" % proxy.port, "ocpp_ws_ping_s": 5}
    try:
        with firmware_proc.Firmware(config=cfg) as fw:
            _wait(lambda: b.boots and fw.ctl("ocpp")["state"] == "connected", 20)
            time.sleep(1)
            print("  connect (ws): worst loop stall %d ms" % _reconnect_stall(fw))
            cp = b.cp()
            n0 = len(cp.raw)
            fw.ctl("loop_reset")

            async def burst():
                sent = {}
                for i in range(100):
                    uid = "b%d" % i
                    sent[uid] = time.monotonic()
                    await cp._connection.send('[2,"%s","GetConfiguration",{"key":["HeartbeatInterval"]}]' % uid)
                return sent
            sent = b.run(burst())
            _wait(lambda: sum(1 for t, m in cp.raw[n0:] if json.loads(m)[1] in sent) >= 100, 30)
            last = max(t for t, m in cp.raw[n0:] if json.loads(m)[1] in sent) - min(sent.values())
            print("  burst of 100 GetConfiguration CALLs sent at once: all answered %.0f ms after the first was "
                  "sent; worst loop stall %d ms" % (last * 1000, fw.status()["loop"]["worst_ms"]))
            rtt = []
            for i in range(20):  # one at a time: the round trip of a single CALL over loopback
                msg, took = b.raw_call('[2,"s%d","GetConfiguration",{"key":["HeartbeatInterval"]}]' % i, "s%d" % i)
                rtt.append(took)
            rtt.sort()
            print("  single CALLs: answered after median %.1f ms, worst %.1f ms (bar 1000 ms)" %
                  (rtt[10] * 1000, rtt[-1] * 1000))
            proxy.mode = "blackhole"
            t0 = time.monotonic()
            _wait(lambda: fw.ctl("ocpp")["state"] != "connected", 60)
            dead = time.monotonic() - t0
            proxy.mode = "pass"
            t1 = time.monotonic()
            c = fw.ctl("ocpp")["connects"]
            _wait(lambda: fw.ctl("ocpp")["connects"] > c and fw.ctl("ocpp")["state"] == "connected", 120, 0.1)
            print("  blackholed backend noticed after %.1f s (pings every 5 s, deadline 10 s; bar: 2 x heartbeat "
                  "+ 10 s = 610 s); back %.1f s after the backend returned (the backoff then in force, up to "
                  "5 min, plus a connect)" %
                  (dead, time.monotonic() - t1))
    finally:
        b.stop()
    pki = make_pki(tempfile.mkdtemp(prefix="ocpp-bench-pki-"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server"], pki["server_key"])
    b = Backend(ssl_context=ctx).start()
    with open(pki["ca"]) as f:
        ca = f.read()
    cfg.update(ocpp_url="wss://localhost:%d/ocpp" % b.port, ocpp_tls_ca=ca)
    try:
        with firmware_proc.Firmware(config=cfg) as fw:
            _wait(lambda: fw.ctl("ocpp")["state"] == "connected", 30)
            time.sleep(1)
            print("  connect (wss, ECDSA P-256, server verified): worst loop stall %d ms, the TLS handshake "
                  "included (host CPU; on an ESP32 it runs inside one mbedtls call)" % _reconnect_stall(fw))
    finally:
        b.stop()


if __name__ == "__main__":
    main()
    link()
