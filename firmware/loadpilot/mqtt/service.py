# The MQTT API topics (docs/mqtt-topics.md) on top of the transport: which broker serves which topic group,
# subscriptions, the periodic get/... publishes, the log and ta_log feeds, Home Assistant discovery. Every
# request goes to the one command layer (api/commands.py); nothing here changes settings by itself.
import asyncio
import json
import time

from loadpilot.api.dev_info import DevInfo
from loadpilot.api.dev_info_stream import DevInfoStream
from loadpilot.api.commands import CommandError, error_answer
from loadpilot.log import level_name, INFO
from loadpilot.redact import redact

# this module is imported only when a broker is configured (mqtt.wanted); dedup only when a command arrives

_OUT_MAX = 16      # queued answers; a flood of requests beyond this is answered with a log line instead
_LOG_MAX = 32      # log lines waiting for the broker
_TICK_MS = 250    # the topic task's period (get/... timing, log lines that waited for the broker)
_HA_PREFIX = "homeassistant"
_HA_WAITS = 200  # x 50 ms: how long one discovery config waits for room in the in-flight window
# Home Assistant discovery: (key, label, unit, device_class) per sensor, and the config as text templates, so
# a config is one string, not a dict and its JSON (99 of them for 33 devices). Names and topics go through
# json.dumps (quoting); the labels, keys and units here need none.
_HA_EVSE = (("state", "State", None, None), ("cur_charging_power", "Power", "W", "power"),
            ("total_energy", "Energy", "Wh", "energy"))
_HA_METER = (("power_w", "Power", "W", "power"), ("import", "Import", "Wh", "energy"),
             ("export", "Export", "Wh", "energy"))
_HA_COMMON = ('"state_topic": %s, "availability_topic": %s, "payload_available": "online", '
              '"payload_not_available": "offline", "device": {"identifiers": [%s], "name": %s, '
              '"manufacturer": "LoadPilot", "model": "%s"}')
_HA_UNIT = ', "unit_of_measurement": "%s", "device_class": "%s", "state_class": "%s"'
_HA_SENSOR = '{"name": "%s", "unique_id": %s, "object_id": %s, "value_template": "{{ value_json.%s }}", %s%s}'


from loadpilot.mqtt import BROKER_KEYS, mqtt_inputs, user_meters, wanted  # noqa: F401 (BROKER_KEYS re-exported)


class MqttApiService:
    def __init__(self, store, commands, site, log, serial, evse=None, max_packet=4096, dns_server=None):
        from loadpilot.mqtt.connections import Connections
        self.store = store
        self.commands = commands
        self.site = site
        self.log = log
        self.evse = evse
        root = store.get("mqtt_topic_root")
        if store.get("mqtt_topic_serial"):
            root = "%s_%s" % (root, serial)
        self.root = root
        self.dev_info = DevInfo(store, site, commands, evse)
        commands.site = site
        commands.dev_info = self.dev_info
        self.conns = Connections(default_url=store.secret("mqtt_url") or None, status_topic=root + "/status",
                                 log=log, max_packet=max_packet, dns_server=dns_server)
        self._dedup = {}  # id(client) -> [connects, Dedup]
        self.duplicates = 0
        self._out = []  # (client, topic, payload or None for dev_info, qos)
        self._wake = asyncio.Event()
        self._log_q = []
        self.log_dropped = 0
        self.api = self._client("mqtt_api_url")
        self.info = self._client("mqtt_dev_info_url")
        self.logc = self._client("mqtt_log_url")
        self.ta = self._client("mqtt_ta_log_url")
        self.transactions = 0  # ta_log records queued
        self._ha_connects = -1
        self._ha_devices = None  # the device list the discovery configs were published for
        self._ha_ids = ()        # the dev_ids whose configs are on the broker (retained)
        if self.api is not None:
            c = self.api
            c.subscribe(root + "/api/#", 1, lambda m: self._on_api(m, c))
            if store.get("mqtt_ctl_enabled"):
                c.subscribe(root + "/ctl", 1, lambda m: self._on_ctl(m, c))
        self._set_clients = {}  # dev_id -> the client its set/<dev_id> arrives on (set_res goes back there)
        self.user_meters = []
        self.attach_devices()
        if self.logc is not None:
            log.add_listener(self._on_log)
        tracker = commands.sessions
        if self.ta is not None and tracker is not None:  # ta_log comes from the session journal
            for s in tracker.journal.recovered:  # closed as PowerLoss at this boot, before this service existed
                self._on_session(s)
            tracker.listeners.append(self._on_session)

    def attach_devices(self):
        """Subscriptions of the MQTT-fed devices in the device list: at start, and again when it changes. A
        device that left keeps its subscription until the next restart, but nothing sent there is taken. Several
        user meters may read one topic (the client keeps one handler per topic: this one fans out)."""
        root = self.root
        wanted = {}
        for dev in mqtt_inputs(self.store):
            try:
                c = self.conns.get(dev["address"])
            except ValueError as e:
                self.log.error("mqtt", "%s address: %s" % (dev["dev_id"], e))
                continue
            wanted[dev["dev_id"]] = c
            if self._set_clients.get(dev["dev_id"]) is not c:
                c.subscribe("%s/set/%s" % (root, dev["dev_id"]), 1, (lambda c: lambda m: self._on_set(m, c))(c))
        self._set_clients = wanted  # set/<dev_id> of a removed device gets "unknown device" from the commands
        old = dict((m.dev_id, m) for m in self.user_meters)
        self.user_meters = []
        for dev in user_meters(self.store):
            from loadpilot.mqtt.user_meter import DefinitionError, UserMeter
            key = (dev["address"], dev.get("definition"))
            m = old.get(dev["dev_id"])
            if m is None or m.key != key:
                try:
                    m = UserMeter(dev["dev_id"], dev.get("definition") or {}, self.site, self.log)
                    m.key = key
                    m.client = self.conns.get(dev["address"] or "mqtt")
                except (DefinitionError, ValueError) as e:
                    self.log.error("mqtt", "%s: %s" % (dev["dev_id"], e))
                    continue
            self.user_meters.append(m)
            c = m.client
            for t in m.topics():  # one subscription per topic, handed to every meter reading it
                c.subscribe(t, 0, (lambda c: lambda msg: self._on_meter_message(msg, c))(c))

    def _on_meter_message(self, msg, client):
        for m in self.user_meters:  # the current list: a meter that left the device list takes nothing
            if m.client is client and msg.topic in m.topics():
                m.on_message(msg)

    def _client(self, key):
        text = self.store.secret(key)
        if not text:
            return None
        try:
            return self.conns.get(text)
        except ValueError as e:
            self.log.error("mqtt", "%s: %s" % (key, e))
            return None

    @classmethod
    def create(cls, store, commands, site, log, serial, evse=None, max_packet=4096, dns_server=None):
        """The service, or None when no topic group names a broker (no tasks, no sockets)."""
        if not wanted(store):
            return None
        return cls(store, commands, site, log, serial, evse, max_packet, dns_server)

    def start(self, spawn):
        """spawn(name, factory): one task per broker connection, the answer sender and the topic task."""
        for c in self.conns.clients():
            spawn("mqtt %s" % c.url.redacted(), c.run)
        spawn("mqtt_answers", self._sender)
        spawn("mqtt_topics", self.run)

    def view(self):
        return {"root": self.root, "brokers": self.conns.view(), "duplicates": self.duplicates,
                "log_dropped": self.log_dropped, "transactions": self.transactions}

    # ---- incoming ---------------------------------------------------------------------------------------

    def _duplicate(self, msg, client):
        """A second delivery of a message already handled on this connection. Sessions are clean, so a broker
        never redelivers across connections, while packet ids start again after a reconnect: the memory is
        per client and is forgotten when the client reconnects."""
        if msg.qos == 0:  # Dedup() below keeps no QoS 0 window: QoS 0 traffic needs neither it nor its import
            return False
        k = id(client)
        d = self._dedup.get(k)
        if d is None or d[0] != client.connects:
            from loadpilot.mqtt.dedup import Dedup
            d = self._dedup[k] = [client.connects, Dedup()]
        if d[1].is_duplicate(msg):
            self.duplicates += 1
            return True
        return False

    def _fresh(self, msg, client, what):
        """False for a message that must not run: retained (it would run again after every reconnect) or a
        second delivery of one already executed."""
        if msg.retain:
            self.log.warn("mqtt", "%s: retained message ignored (publish commands without retain)" % what)
            return False
        return not self._duplicate(msg, client)

    def _queue(self, client, topic, payload, qos=1):
        if len(self._out) >= _OUT_MAX:
            self.log.warn("mqtt", "answer queue full: %s not answered" % topic)
            return
        if isinstance(payload, str):
            payload = redact(payload)  # every answer passes the one redaction (a stream redacts its own lines)
        self._out.append((client, topic, payload, qos))
        self._wake.set()

    def _on_api(self, msg, client):
        if not self._fresh(msg, client, "api"):
            return
        query = msg.topic[len(self.root) + 5:]
        res_topic = self.root + "/api_res"
        try:
            if msg.payload is None:  # over the client's packet buffer: skipped, but answered
                raise CommandError("request of %d bytes is larger than %d bytes" % (msg.size, self.api.max_packet))
            body = msg.payload or None
            if query.startswith("cmd=get_dev_info") and "&" not in query:
                self._queue(self.api, res_topic, None)  # streamed by the sender, never one string
                return
            res = self.commands.execute(query, body)
            if hasattr(res, "parts"):  # a streamed answer (export_sessions): one publish, written chunk by chunk
                self._queue(self.api, res_topic, res)
                return
            out = json.dumps(res)
        except CommandError as e:
            out = json.dumps(error_answer(str(e), query))
        except Exception as e:  # a bug must still answer: the caller waits on api_res
            self.log.error("mqtt", "api request failed: %s: %s" % (type(e).__name__, e))
            out = json.dumps(error_answer("bad request: %s: %s" % (type(e).__name__, e), query))
        self._queue(self.api, res_topic, out)

    def _on_ctl(self, msg, client):
        if not self._fresh(msg, client, "ctl"):
            return
        if not self.store.get("mqtt_ctl_enabled"):
            self.log.warn("mqtt", "ctl: control of wallboxes is not enabled (mqtt_ctl_enabled)")
            return
        try:
            if msg.payload is None:
                raise CommandError("ctl: message of %d bytes is larger than %d bytes" % (msg.size, client.max_packet))
            from loadpilot.api import json_in  # with the first ctl message: an API that is only read never needs it
            try:  # strict JSON, or the documentation's own form with bare keys: {"E1": {cur: 8000}}
                obj = json_in.loads(msg.payload, relaxed=True)
            except json_in.JsonError as e:
                raise CommandError("ctl: payload: %s (keys may go without quotes, as documented)" % e)
            self.commands.ctl(obj)
            self.log.info("mqtt", "ctl applied: %s" % ", ".join(sorted(obj)))
        except CommandError as e:
            self.log.warn("mqtt", "ctl refused, nothing changed: %s" % e)

    def _on_set(self, msg, client):
        dev_id = msg.topic[len(self.root) + 5:]
        # retained data is fine here (the last reading), but a duplicate is dropped like any other
        if self._duplicate(msg, client):
            return
        try:
            if msg.payload is None:
                raise CommandError("payload: %d bytes is larger than %d bytes" % (msg.size, client.max_packet))
            from loadpilot.api import json_in
            try:
                obj = json_in.loads(msg.payload)
            except json_in.JsonError as e:
                raise CommandError("payload: %s" % e)
            answer = self.commands.http_input(dev_id, obj)
        except CommandError as e:
            self.log.warn("mqtt", "set/%s refused, nothing changed: %s" % (dev_id, e))
            # a wallbox waits for its answer: it gets the refusal on set_res (docs/mqtt-topics.md)
            answer = {"error": str(e), "dev_id": dev_id}
        if dev_id[0] == "E" and dev_id in self._set_clients:
            self._queue(self._set_clients[dev_id], "%s/set_res/%s" % (self.root, dev_id), json.dumps(answer), 0)

    def _on_log(self, entry):
        if entry[1] < INFO:
            return
        if len(self._log_q) >= _LOG_MAX:
            self._log_q.pop(0)
            self.log_dropped += 1
        self._log_q.append(entry)
        self._wake.set()

    # ---- outgoing ---------------------------------------------------------------------------------------

    async def _sender(self):
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._out:
                client, topic, payload, qos = self._out.pop(0)
                if payload is None:
                    ok = await self._publish_dev_info(client, topic, qos)
                elif not isinstance(payload, str):  # a stream: its length first, then its chunks
                    ok = await client.publish_parts(topic, payload.length(), payload.parts, qos)
                else:
                    ok = await client.publish(topic, payload, qos)
                if not ok and qos:
                    self.log.warn("mqtt", "%s lost: the broker's in-flight window is full" % topic)
            while self._log_q and self.logc.is_connected():
                e = self._log_q.pop(0)
                line = json.dumps({"time": time.time(), "level": level_name(e[1]), "tag": e[2],
                                   "msg": redact(str(e[3]))})
                await self.logc.publish(self.root + "/log", line, 0)

    async def _publish_dev_info(self, client, topic, qos=0):
        s = DevInfoStream(self.dev_info)
        for _ in s.measure():
            pass
        return await client.publish_parts(topic, s.length, s.parts, qos)

    async def _publish_info(self):
        """One round of get/...: each device's get/<dev_id> goes out as the dev_info stream measures it, then
        get/dev_info is rendered again piece by piece as it is sent (api/dev_info_stream.py). The peak is one
        device's JSON, not the document (26 KB for 50 devices); the discovery configs are built one at a time."""
        c = self.info
        if c is None or not c.is_connected():
            return
        root = self.root
        ha = self.store.get("mqtt_ha_discovery")
        s = DevInfoStream(self.dev_info)
        for i, piece in s.measure():  # a device list changed meanwhile is published from the next round on
            if i >= 0:
                dev = s.devs[i]
                if dev.get("publish_mqtt") or ha:
                    await c.publish("%s/get/%s" % (root, dev["dev_id"]), piece)
        piece = None
        await c.publish_parts(root + "/get/dev_info", s.length, s.parts, 0)
        await c.publish(root + "/get/params", redact(json.dumps(self.dev_info.params())))
        s = None
        devices = self.store.peek("devices")  # a new list object on every change (set_params, del_device)
        if ha and (c.connects != self._ha_connects or devices is not self._ha_devices):
            self._ha_connects = c.connects  # again after every reconnect: the broker may have lost them
            self._ha_devices = devices
            await self._publish_discovery(c)
        elif not ha and self._ha_ids:
            await self._clear_discovery(c, ())  # switched off: HA drops the entities

    async def _retained(self, c, topic, payload):
        """QoS 1, retained. Waits for room in the client's in-flight window: a burst of discovery configs (three
        per device) would overflow it, and what does not fit would be dropped."""
        for _ in range(_HA_WAITS):
            if await c.publish(topic, payload, 1, True):
                return True
            if not c.is_connected():
                return False
            await asyncio.sleep_ms(50)  # the broker's PUBACKs free the window meanwhile
        return False

    async def _clear_discovery(self, c, keep):
        """An empty retained config removes an entity from HA (and from the broker): one per sensor of each
        device published earlier that is not in keep, so a deleted device leaves no stale entities behind."""
        node = self.root.replace("/", "_")
        left = ()  # cleared not yet: the in-flight window was full (tried again next round)
        for dev_id in self._ha_ids:
            if dev_id not in keep:
                ok = True
                for key, _, _, _ in (_HA_EVSE if dev_id[0] == "E" else _HA_METER):
                    topic = "%s/sensor/%s_%s_%s/config" % (_HA_PREFIX, node, dev_id, key)
                    ok = await self._retained(c, topic, b"") and ok
                if not ok:
                    left += (dev_id,)
        self._ha_ids = keep + left
        return not left

    async def _publish_discovery(self, c):
        node = self.root.replace("/", "_")
        configs = self.dev_info.configs()
        ok = await self._clear_discovery(c, tuple(d["dev_id"] for d in configs))
        for dev in configs:
            dev_id = dev["dev_id"]
            sensors = _HA_EVSE if dev_id[0] == "E" else _HA_METER
            # the device part and the topics are the same for its three sensors: rendered once
            common = _HA_COMMON % (json.dumps("%s/get/%s" % (self.root, dev_id)), json.dumps(self.root + "/status"),
                                   json.dumps("%s_%s" % (node, dev_id)), json.dumps(dev.get("name") or dev_id),
                                   "chargepoint" if dev_id[0] == "E" else "meter")
            for key, label, unit, cls in sensors:
                uid = "%s_%s_%s" % (node, dev_id, key)
                extra = "" if unit is None else _HA_UNIT % (unit, cls, "total_increasing" if cls == "energy"
                                                            else "measurement")
                cfg = _HA_SENSOR % (label, json.dumps(uid), json.dumps(uid), key, common, extra)
                ok = await self._retained(c, "%s/sensor/%s/config" % (_HA_PREFIX, uid), redact(cfg)) and ok
        if not ok:
            self._ha_devices = None  # a config was not queued (in-flight window full): all again next round

    def _on_session(self, s):
        """A session closed (sessions/tracker.py): its record on ta_log, QoS 1."""
        from loadpilot.sessions.history import view
        self.transactions += 1
        self._queue(self.ta, self.root + "/ta_log", json.dumps(view(s)), 1)

    async def run(self):
        next_info = time.ticks_ms()
        while True:
            now = time.ticks_ms()
            if time.ticks_diff(now, next_info) >= 0:
                next_info = time.ticks_add(now, self.store.get("mqtt_publish_s") * 1000)
                await self._publish_info()
            if self._log_q:
                self._wake.set()  # log lines that waited for the broker
            await asyncio.sleep_ms(_TICK_MS)
