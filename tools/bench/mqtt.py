"""MQTT client benchmark: how long does each client stall the asyncio loop while its broker is blackholed?

Both clients run on the MicroPython unix binary next to a 10 ms ticker task that records its worst lateness.
The broker accepts TCP and never answers (and drops the connection after HOLD_S, so the baseline returns).

- ours: loadpilot.mqtt.client against the silent broker for RUN_S, retrying with its timeouts;
- baseline: umqtt.simple's connect(), fetched by package name from the configured package index into a
  temporary directory outside the repo (pinned by SHA-256, never committed). If it cannot be had, we say so.

Bar (DESIGN.md): a blackholed broker stalls the loop by no more than 20 ms on the host.
"""
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "host_tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
import firmware_proc  # noqa: E402
from mqtt_peers import Agent, FakeBroker, Mosquitto, make_ca  # noqa: E402

BAR_MS = 20
RUN_S = 5.0
HOLD_S = 3.0
UMQTT = ("micropython-umqtt.simple", "1.3.4", "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f")


def fetch_umqtt(dest):
    """Unpack umqtt/simple.py from the pinned sdist into dest; return an error string or None."""
    try:
        from fetch_peer import index_url
        name, version, sha = UMQTT
        page_url = index_url() + "micropython-umqtt-simple/"
        page = urllib.request.urlopen(page_url, timeout=60).read().decode()
        wanted = "%s-%s.tar.gz" % (name, version)
        href = next((h for h in re.findall(r'href="([^"]+)"', page) if wanted in h), None)
        if href is None:
            return "%s not listed on the package index" % wanted
        data = urllib.request.urlopen(urllib.parse.urljoin(page_url, href.split("#")[0]), timeout=120).read()
        if hashlib.sha256(data).hexdigest() != sha:
            return "%s: SHA-256 mismatch" % wanted
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                if m.isfile() and m.name.endswith("umqtt/simple.py"):
                    os.makedirs(os.path.join(dest, "umqtt"), exist_ok=True)
                    with open(os.path.join(dest, "umqtt", "simple.py"), "wb") as f:
                        f.write(tar.extractfile(m).read())
                    open(os.path.join(dest, "umqtt", "__init__.py"), "w").close()
                    return None
        return "umqtt/simple.py not in %s" % wanted
    except Exception as e:  # no network or no index: report, do not fail the bench
        return "%s: %s" % (type(e).__name__, e)


UMQTT_SNIPPET = r"""
import sys
sys.path.insert(0, %(dir)r)
import asyncio, json, time
from umqtt.simple import MQTTClient
worst = [0]

async def ticker():
    while True:
        t = time.ticks_ms()
        await asyncio.sleep_ms(10)
        lag = time.ticks_diff(time.ticks_ms(), t) - 10
        if lag > worst[0]:
            worst[0] = lag

async def main():
    asyncio.create_task(ticker())
    await asyncio.sleep_ms(200)
    c = MQTTClient("bench", "127.0.0.1", %(port)d, keepalive=30)
    t = time.ticks_ms()
    err = None
    try:
        c.connect()
    except Exception as e:
        err = "%%s %%s" %% (type(e).__name__, e)
    blocked = time.ticks_diff(time.ticks_ms(), t)
    await asyncio.sleep_ms(50)
    print(json.dumps({"connect_ms": blocked, "worst_ms": worst[0], "error": err}))

asyncio.run(main())
"""


def silent_then_close(conn, i):
    time.sleep(HOLD_S)  # never answers; closes so a blocking client finally returns
    try:
        conn.close()
    except OSError:
        pass


def bench_ours():
    fb = FakeBroker(None)
    agent = Agent("mqtt://127.0.0.1:%d" % fb.port, connect_timeout_ms=1000, backoff_min_ms=100,
                  backoff_max_ms=500)
    try:
        agent.call("reset_stall", "reset")
        agent.drain(RUN_S)
        v = agent.view()
        return {"worst_ms": v["stall_ms"], "attempts": fb.accepts, "error": v["last_error"]}
    finally:
        agent.close()
        fb.close()


def bench_ours_connected(n=200):
    """Worst stall while publishing n QoS 1 messages to a real mosquitto (steady-state cost)."""
    b = Mosquitto().start()
    agent = Agent("mqtt://127.0.0.1:%d" % b.port)
    try:
        agent.wait_connected()
        agent.call("reset_stall", "reset")
        t = time.monotonic()
        for i in range(n):
            agent.call("pub", "pub", topic="bench/x", payload="x" * 200, qos=1)
        while agent.view()["pending"]:
            time.sleep(0.01)
        dt = time.monotonic() - t
        return {"worst_ms": agent.view()["stall_ms"], "n": n, "seconds": dt}
    finally:
        agent.close()
        b.close()


def bench_ours_tls():
    """Worst stall across a TLS connect (RSA 2048 test CA, certificate verified) to mosquitto."""
    d = tempfile.mkdtemp(prefix="lp-bench-ca-")
    try:
        certs = make_ca(d)
    except Exception as e:
        shutil.rmtree(d, ignore_errors=True)
        return {"unavailable": "cannot make test certificates: %s" % e}
    b = Mosquitto(extra="cafile %s\ncertfile %s\nkeyfile %s\n" % (certs["ca"], certs["cert"], certs["key"]))
    try:
        b.start()
        t = time.monotonic()
        agent = Agent("mqtts://127.0.0.1:%d" % b.port, cafile=certs["ca"])
        try:
            agent.wait_connected()
            return {"worst_ms": agent.view()["stall_ms"], "seconds": time.monotonic() - t}
        finally:
            agent.close()
    finally:
        b.close()
        shutil.rmtree(d, ignore_errors=True)


def bench_umqtt():
    tmp = tempfile.mkdtemp(prefix="lp-umqtt-")  # outside the repo, removed afterwards
    try:
        err = fetch_umqtt(tmp)
        if err:
            return {"unavailable": err}
        fb = FakeBroker(silent_then_close)
        try:
            rc, out = firmware_proc.run_snippet(UMQTT_SNIPPET % {"dir": tmp, "port": fb.port}, timeout=30)
        finally:
            fb.close()
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                r["version"] = UMQTT[1]
                return r
        return {"unavailable": "umqtt.simple run failed: " + out[-300:]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ours = bench_ours()
    base = bench_umqtt()
    conn = bench_ours_connected()
    tls = bench_ours_tls()
    print("MQTT, blackholed broker (accepts TCP, never answers); 10 ms ticker beside the client; bar %d ms" % BAR_MS)
    print("  %-34s %10s  %s" % ("client", "worst stall", "notes"))
    print("  %-34s %8d ms  %d connect attempts in %.0f s, last error: %s"
          % ("loadpilot.mqtt (ours)", ours["worst_ms"], ours["attempts"], RUN_S, ours["error"]))
    if "unavailable" in base:
        print("  %-34s %10s  unavailable here: %s" % ("umqtt.simple", "-", base["unavailable"]))
    else:
        print("  %-34s %8d ms  connect() blocked %d ms until the broker hung up after %.0f s (%s)"
              % ("umqtt.simple %s" % base["version"], base["worst_ms"], base["connect_ms"], HOLD_S,
                 base["error"]))
    print("MQTT, connected to mosquitto: %d QoS 1 publishes of 200 bytes in %.2f s, worst stall %d ms"
          % (conn["n"], conn["seconds"], conn["worst_ms"]))
    if "unavailable" in tls:
        print("MQTT over TLS: %s" % tls["unavailable"])
    else:
        print("MQTT over TLS (RSA 2048, CA verified): start to CONNACK %.2f s, worst stall %d ms (host CPU; "
              "an ESP32 handshake takes far longer, see docs/mqtt.md)" % (tls["seconds"], tls["worst_ms"]))
    ok = ours["worst_ms"] <= BAR_MS
    print("bar: ours %s (%d ms vs %d ms)" % ("MEETS" if ok else "MISSES", ours["worst_ms"], BAR_MS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
