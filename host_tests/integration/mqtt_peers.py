"""Peers for the MQTT tests and benchmark: a mosquitto broker on a free loopback port, the MicroPython agent
(mqtt_agent.py) as a subprocess, a paho-mqtt observer, raw-socket fake brokers, and a throwaway test CA."""
import json
import os
import queue
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import firmware_proc  # noqa: E402
from firmware_proc import stop_process

AGENT = os.path.join(HERE, "mqtt_agent.py")
# Debian installs the broker in /usr/sbin, which is not on every user's PATH
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    """mosquitto -c <generated conf> on 127.0.0.1:<free port>; restartable on the same port. `{dir}` in extra
    stands for the broker's own temp directory."""

    def __init__(self, extra="", passwords=None, port=None):
        self.dir = tempfile.mkdtemp(prefix="lp-mosq-")
        self.port = port or firmware_proc.free_port()
        self.extra = extra
        lines = ["listener %d 127.0.0.1" % self.port]
        if passwords:
            pw = os.path.join(self.dir, "passwd")
            open(pw, "w").close()
            for user, password in passwords.items():
                subprocess.run(["mosquitto_passwd", "-b", pw, user, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", "password_file " + pw]
        else:
            lines.append("allow_anonymous true")
        if os.getuid() == 0:
            lines.append("user root")  # as root mosquitto would switch to a user that cannot read our files
        lines.append(extra.replace("{dir}", self.dir))
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self.log = os.path.join(self.dir, "log")

    def start(self, timeout=5):
        self._logf = open(self.log, "a")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self._logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited:\n" + open(self.log).read())
            if "running" in open(self.log).read().split("starting")[-1]:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return self
                except OSError:
                    pass
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not come up:\n" + open(self.log).read())

    def stop(self):
        stop_process(self.proc)
        if self.proc:
            self._logf.close()
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Agent:
    """The firmware's MQTT client on the real MicroPython binary, driven over stdin/stdout JSON lines."""

    def __init__(self, url, cafile=None, **client):
        cfg = {"firmware": firmware_proc.FIRMWARE, "url": url, "client": client}
        if cafile:
            cfg["cafile"] = cafile
        self.proc = subprocess.Popen([firmware_proc.micropython_binary(), AGENT, json.dumps(cfg)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     bufsize=0)
        self.events = []
        self.raw = []
        self._partial = b""
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.wait(lambda e: e["ev"] == "ready", 10)

    def _pump(self, timeout):
        # read the raw pipe: a buffered readline() would hide lines from select()
        if not self._sel.select(max(0.0, timeout)):
            return False
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            raise RuntimeError("agent exited:\n" + "".join(self.raw))
        self._partial += data
        while b"\n" in self._partial:
            line, self._partial = self._partial.split(b"\n", 1)
            text = line.decode(errors="replace") + "\n"
            self.raw.append(text)
            try:
                self.events.append(json.loads(text))
            except ValueError:
                pass
        return True

    def wait(self, pred, timeout=10, start=0):
        """Return the first event (from index start) matching pred, reading output until timeout."""
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.events):
                if pred(self.events[i]):
                    return self.events[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("agent: no matching event within %.1f s; output:\n%s"
                                     % (timeout, "".join(self.raw[-40:])))
            self._pump(left)

    def send(self, **req):
        n = len(self.events)
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        return n

    def call(self, op, reply, timeout=10, **args):
        n = self.send(op=op, **args)
        return self.wait(lambda e: e["ev"] == reply, timeout, start=n)

    def view(self):
        return self.call("view", "view")

    def wait_connected(self, connects=1, timeout=10):
        return self.wait(lambda e: e["ev"] == "state" and e["state"] == "connected" and e["connects"] >= connects,
                         timeout)

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        self.proc.stdout.close()
        self.proc.stdin.close()


class Observer:
    """A paho-mqtt 2.x client that records every message it sees."""

    def __init__(self, port, topics=("#",), client_id="", clean=True, tls_ca=None, user=None, password=None):
        import paho.mqtt.client as mqtt
        self.q = queue.Queue()
        self.messages = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        if tls_ca:
            self.c.tls_set(ca_certs=tls_ca)
        if user:
            self.c.username_pw_set(user, password)
        self.subscribed = threading.Event()
        self.c.on_message = lambda c, u, m: self.q.put((m.topic, m.payload, m.qos, m.retain))
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, 1) for t in topics]
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("paho could not subscribe")

    def wait(self, topic, payload=None, timeout=10):
        deadline = time.monotonic() + timeout
        for m in self.messages:
            if m[0] == topic and (payload is None or m[1] == payload):
                return m
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("paho: no %s %r within %.1f s; saw %r" % (topic, payload, timeout,
                                                                               self.messages[-10:]))
            try:
                m = self.q.get(timeout=left)
            except queue.Empty:
                continue
            self.messages.append(m)
            if m[0] == topic and (payload is None or m[1] == payload):
                return m

    def publish(self, topic, payload, qos=0, retain=False):
        self.c.publish(topic, payload, qos, retain).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class FakeBroker:
    """A raw-socket broker on a free port. behaviour(conn, index) runs in a thread per accepted connection."""

    def __init__(self, behaviour):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepts = 0
        self.conns = []
        self.behaviour = behaviour
        self._stop = False
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepts += 1
            self.conns.append(conn)
            if self.behaviour:
                threading.Thread(target=self.behaviour, args=(conn, self.accepts), daemon=True).start()

    def close(self):
        self._stop = True
        self._t.join(2)
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def read_packet(conn):
    """One MQTT packet from a blocking socket: (first byte, body)."""
    def exact(n):
        b = b""
        while len(b) < n:
            chunk = conn.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b
    first = exact(1)[0]
    n = shift = 0
    while True:
        b = exact(1)[0]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return first, exact(n)


def make_ca(dirname, name="LoadPilot Test CA"):
    """A CA and a server certificate for 127.0.0.1/localhost signed by it, made with the openssl CLI."""
    if not shutil.which("openssl"):
        raise RuntimeError("openssl not found")

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=dirname)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=" + name)
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
        "/CN=localhost")
    with open(os.path.join(dirname, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other-ca.pem",
        "-days", "2", "-subj", "/CN=Some Other CA")
    return {k: os.path.join(dirname, v) for k, v in
            (("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key"), ("other_ca", "other-ca.pem"))}
