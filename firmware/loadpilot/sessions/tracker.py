# The session tracker: watches every wallbox in the Site (the local charge point and managed or pushed ones alike)
# and turns plug-in .. unplug into sessions in the journal (docs/sessions.md). A session starts when
# codes.plugged(state) holds and ends when the box reports "waiting" (no car) or its plug-in count moved (another
# car since the last poll: site.DeviceState.set_status); error and offline hold it open, since nobody knows
# whether the car left. While it is open the tracker follows the meter and the manager's
# allocated current, asks the authorizer for the idTag, fixes the start up once the clock is set, and checkpoints
# it to flash when the meter has advanced _CKPT_WH, or _CKPT_S have passed with energy delivered, or _IDLE_CKPT_S
# have passed at all. A poll with nothing to write allocates nothing.
import asyncio
import time

from micropython import const

from loadpilot.codes import (STOP_EV_DISCONNECTED, STOP_OTHER, ST_CHARGING, ST_VENTILATION, ST_WAITING,
                             plugged)
from loadpilot.sessions.journal import Session

_POLL_MS = const(250)
_CKPT_WH = const(100)        # at most 0.1 kWh is lost at a power cut ...
_CKPT_S = const(60)          # ... and at most 60 s of charging
_IDLE_CKPT_S = const(900)    # a car that draws nothing: its end time is known within 15 minutes
# 2024-01-01 00:00 in this port's epoch (1970 on unix, 2000 on the ESP32): before it, the clock is not set
CLOCK_SET_S = time.mktime((2024, 1, 1, 0, 0, 0, 0, 0))


def wall_now():
    """Wall-clock seconds, or -1 while the clock is not set."""
    t = int(time.time())  # a float on the unix port
    return t if t >= CLOCK_SET_S else -1


class SessionTracker:
    # the checkpoint rule (class values: the wear benchmark gives its instance an every-second baseline)
    every_wh = _CKPT_WH
    every_s = _CKPT_S
    idle_s = _IDLE_CKPT_S

    def __init__(self, site, journal, log, auth_of=None, wall=wall_now):
        self.site = site
        self.journal = journal
        self.log = log
        self.auth_of = auth_of  # dev_id -> (id_tag, method) or None; set by the authorizer (sessions/auth.py)
        self.wall = wall
        self.open = {}         # dev_id -> open Session
        self.last = {}         # dev_id -> the Session closed last since boot (OMCCI 716/718 hold it until the next)
        self.listeners = []    # fn(session) after a session is journalled as closed (MQTT ta_log)
        self.up_s = 0          # uptime in s (time base of sessions while the clock is not set)
        self._up_ms = 0
        self._dt_ms = 0        # since the last poll
        self._last_ms = None
        self._boxes = []       # the wallboxes' DeviceStates, rebuilt when the Site's device dict is replaced
        self._boxes_of = None
        self._no_clock = 0     # open sessions whose times are still uptime
        self.errors = 0

    # ---- readers

    def session_of(self, dev_id):
        """The open session at dev_id, else the one closed there last since boot, else None."""
        s = self.open.get(dev_id)
        return s if s is not None else self.last.get(dev_id)

    # ---- the poll

    def _tick(self, now_ms):
        self._dt_ms = 0
        if self._last_ms is not None:
            self._dt_ms = time.ticks_diff(now_ms, self._last_ms)
            self._up_ms += self._dt_ms
            while self._up_ms >= 1000:
                self._up_ms -= 1000
                self.up_s += 1
        self._last_ms = now_ms

    def _devices(self):
        devs = self.site.devices
        if devs is self._boxes_of:
            return self._boxes
        self._boxes_of = devs
        self._boxes = [d for d in devs.values() if d.is_evse]
        for dev_id in list(self.open):
            if dev_id not in devs:  # the wallbox left the configuration
                self._end(self.open[dev_id], STOP_OTHER)
        return self._boxes

    def poll(self, now_ms):
        self._tick(now_ms)
        if self._no_clock:
            self._clock_check()
        boxes = self._devices()
        for i in range(len(boxes)):
            d = boxes[i]
            st = d.status
            s = self.open.get(d.dev_id)
            if s is None:
                if plugged(st):
                    self._start(d)
                continue
            r = d.reading
            if r.updated_ms is not None:  # the unplugging poll's reading still counts
                if s.meter_start_wh < 0:  # the box had not reported when the car came: its first reading starts
                    s.meter_start_wh = s.ckpt_wh = r.import_wh
                s.meter_end_wh = r.import_wh
            if st == ST_WAITING:
                self._end(s, STOP_EV_DISCONNECTED)
                continue
            if d.plugins != s.plugins and plugged(st):
                # another car was plugged in since the last poll (its unplug fell between two polls): the
                # session ends at the meter read now, as at an unplug, and the new car's starts from it
                self._end(s, STOP_EV_DISCONNECTED)
                self._start(d)
                continue
            if st == ST_CHARGING or st == ST_VENTILATION:
                s.charge_ms += self._dt_ms  # OMCCI 718: the time it charged
            if plugged(st):
                a = d.alloc_ma
                s.last_ma = a
                if a > s.peak_ma:
                    s.peak_ma = a
            if not s.method and self.auth_of is not None:  # asked until the authorizer knows
                self._auth(s)
            wh = s.meter_end_wh - s.ckpt_wh
            age = self.up_s - s.ckpt_up_s
            if s.dirty or wh >= self.every_wh or (age >= self.every_s and wh > 0) or age >= self.idle_s:
                self._checkpoint(s)

    def _auth(self, s):
        a = self.auth_of(s.dev_id)
        if a is not None and a[1]:
            s.id_tag = a[0] or ""  # free charging and boxes without authorization have no idTag
            s.method = a[1]
            s.dirty = True

    def _clock_check(self):
        w = self.wall()
        if w < 0:
            return
        for s in self.open.values():  # the clock was set during these sessions: their start is now known
            if not s.wall:
                s.start_s = w - (self.up_s - s.start_up_s)
                s.wall = True
                s.dirty = True
        self._no_clock = 0

    def _stamp(self, s):
        s.end_s = s.start_s + (self.up_s - s.start_up_s)  # the monotonic duration: a clock step changes nothing

    def _checkpoint(self, s):
        self._stamp(s)
        s.ckpt_up_s = self.up_s
        s.ckpt_wh = s.meter_end_wh
        s.dirty = False
        try:
            self.journal.checkpoint(s)
        except OSError as e:  # a full or failing flash must not stop charging: the session stays in RAM
            self.errors += 1
            self.log.error("sessions", "checkpoint of session %d failed: %s" % (s.seq, e))

    def _start(self, d):
        s = Session()
        s.seq = self.journal.next_seq()
        s.dev_id = d.dev_id
        w = self.wall()
        s.wall = w >= 0
        s.start_s = w if s.wall else self.up_s
        if not s.wall:
            self._no_clock += 1
        s.start_up_s = self.up_s
        s.meter_start_wh = s.meter_end_wh = d.reading.import_wh if d.reading.updated_ms is not None else -1
        s.peak_ma = s.last_ma = d.alloc_ma
        s.plugins = d.plugins
        if self.auth_of is not None:
            self._auth(s)
        self.open[d.dev_id] = s
        self._checkpoint(s)
        self.log.info("sessions", "session %d started on %s" % (s.seq, d.dev_id))

    def _end(self, s, reason):
        self._stamp(s)
        del self.open[s.dev_id]
        try:
            self.journal.close(s, reason)
        except OSError as e:
            self.errors += 1
            s.reason = reason
            self.log.error("sessions", "session %d could not be journalled: %s" % (s.seq, e))
        self.last[s.dev_id] = s
        self.log.info("sessions", "session %d ended on %s: %d Wh in %d s" % (s.seq, s.dev_id, s.energy_wh(),
                                                                           s.duration_s()))
        for fn in self.listeners:
            try:
                fn(s)
            except Exception as e:  # a reporter's bug must not lose the next session
                self.log.error("sessions", "listener: %s: %s" % (type(e).__name__, e))

    def stop_all(self, reason):
        """Close every open session (a planned stop)."""
        for dev_id in list(self.open):
            self._end(self.open[dev_id], reason)

    async def run(self):
        while True:
            self.poll(time.ticks_ms())
            await asyncio.sleep_ms(_POLL_MS)
