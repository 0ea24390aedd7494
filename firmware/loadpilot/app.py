# The application: builds the object graph from the board file, starts every task under the supervisor,
# and answers status queries. Feature modules attach here as they arrive; none of them starts tasks itself.
import asyncio
import gc
import sys
import time

from loadpilot import VERSION, board as board_mod, hal as hal_mod, mqtt as mqtt_mod
from loadpilot.api.commands import Commands
from loadpilot.codes import AUTH_OPEN, local_evse_id
from loadpilot.config import ctl as config_ctl, schema
from loadpilot.config.store import Store
from loadpilot.log import INFO, Log, ring_lines
from loadpilot.looplag import LoopLagMonitor
from loadpilot.modbus.pdu import Router
from loadpilot.site import Site
from loadpilot.supervisor import Supervisor

# the System page's commands (api/system_cmd.py NAMES; a unit test keeps the two equal)
_SYSTEM_CMDS = ("get_status", "get_log", "restart", "export_config", "import_config", "accept_license",
                "set_diag_logging")
# del_device, reset_device (api/device_cmd.py) and the OCPP local list (api/ocpp_list_cmd.py): imported on use
_MODULE_CMDS = (("device_cmd", ("del_device", "reset_device")),
                ("ocpp_list_cmd", ("ocpp_list_get", "ocpp_list_delete", "ocpp_list_clear")))
_OPEN_AUTH = ("", AUTH_OPEN)  # a session where authorization is off: no idTag, every car may charge


class App:
    def __init__(self, board, fs_root="", log=None):
        self.board = board
        self.fs_root = fs_root
        self.log = log or Log()
        self.log.resize(ring_lines(board["heap_kb"]))
        self.log.level = INFO  # DEBUG lines only during diagnostic logging (set_diag_logging)
        self.hal = hal_mod.load(board, fs_root)
        from loadpilot.devices.checks import check_devices
        schema.on_new("devices", check_devices)  # drivers, addresses, definitions of a list being set
        # settings naming another COM port, or opening more sockets than the board has, are refused when set
        self.config = Store(fs_root, self.log, ports=schema.com_ports(board["uarts"]),
                            budget=board_mod.socket_budget(board))
        self.monitor = LoopLagMonitor()
        self.supervisor = Supervisor(self.log, self.monitor)
        self.started_ms = time.ticks_ms()
        self.site = Site()
        self.evse = None
        self.evse_control = None
        self.evse_slave = None
        self.local = None  # the local charge point's driver task (devices/evse_local.py)
        self.setpoints = {}  # dev_id -> [enable, current_ma, phases], filled by the manager, applied by drivers
        if board["features"].get("evse"):
            self._init_evse(board)
        self._configure_site()
        self.commands = Commands(self.config, self.log, self.evse_control)
        self.commands.site = self.site
        self.commands.setpoints = self.setpoints
        self._whitelist = None
        self.authorizer = None  # sessions/auth.Authorizer while authorization has something to do (else None)
        self.manager = None
        self.commands.whitelist = self.whitelist
        self._users = None  # sessions/users.Users, loaded when users.jsonl exists or a user command asks
        self.commands.users = self.users
        self._system = None  # api/system_cmd.py, imported on the first of its commands (docs/webui.md)
        run = self._system_cmd  # one bound method for all five (a closure each would cost heap)
        for name in _SYSTEM_CMDS:
            self.commands.add_command(name, run)
        for _, names in _MODULE_CMDS:
            for name in names:
                self.commands.add_command(name, self._module_cmd)
        self._authorization()
        from loadpilot.manager_cycle import ManagerCycle
        shed = self.hal.input("load_shed") if "load_shed" in board["inputs"] else None
        self.manager = ManagerCycle(self.config, self.site, self.log, shed, self.setpoints, self.commands.overrides,
                                    self.evse.limits.hardware_ma if self.evse is not None else 0, self.authorizer)
        from loadpilot.soft_meter import SoftMeter
        self.soft_meter = self.manager.soft = self.commands.soft_meter = SoftMeter(self.site, self.config)
        self.commands.add_command("soft_meter", self._soft_meter_cmd)
        self.config.subscribe(self._auth_changed)
        if self.evse is not None:
            from loadpilot.devices.evse_local import LocalEvse, LocalTask
            self.local = LocalTask(LocalEvse(self.evse, self.evse_control, self.config, self.log), self.site,
                                   self.setpoints)
            self.local.authorizer = self.authorizer
            self.local.step(time.ticks_ms())  # the start limit is in place before the first CP tick
        self.sessions = self._init_sessions(fs_root)  # before the reporters that read it (OMCCI, ta_log)
        self.commands.sessions = self.sessions
        # the slave maps serve only a master on a port; the Site gets the box's readings from evse_local
        if self.evse is not None and any(self.config.get(k) for k in ("pb_tcp_port", "omcci_tcp_port",
                                                                       "slave_rtu_port")):
            from loadpilot.registers.evse_slave import EvseSlaveService
            self.evse_slave = EvseSlaveService(self.config, self.commands, self.evse, self.evse_control, self.log,
                                               self.hal.serial(), on_change=self.local.step)
        self.sunspec_router = Router()  # units ID and ID+1 of the SunSpec server, shared by TCP and RTU
        self._tcp_ports = {}  # port -> the setting that took it
        self.sunspec = None
        if self.config.get("modbus_enabled"):
            from loadpilot.registers.sunspec_service import SunSpecService
            self.sunspec = SunSpecService(self.config, self.commands, self.site, self.log, self.hal.serial())
            self.sunspec.attach(self.sunspec_router)
        self.proxy = None  # TCP-to-RTU proxy on the SunSpec server's port (modbus_proxy; imported only when set)
        if self.sunspec is not None and self.config.get("modbus_proxy"):
            from loadpilot.modbus.proxy_service import ProxyService
            self.proxy = ProxyService(self.config, self.sunspec_router, lambda: self.device_service.layer, self.log,
                                      self.config.ports)
        elif self.config.get("modbus_proxy"):
            self.log.warn("proxy", "modbus_proxy needs the SunSpec server (modbus_enabled): nothing is proxied")
        self.mqtt = None
        try:
            if mqtt_mod.wanted(self.config):  # no broker named: the topics module is not even imported
                from loadpilot.mqtt.service import MqttApiService
                self.mqtt = MqttApiService.create(self.config, self.commands, self.site, self.log, self.hal.serial(),
                                                  self.evse, mqtt_mod.max_packet(board["heap_kb"]),
                                                  self.hal.dns_server)
        except Exception as e:  # a bad MQTT setting must not stop the charge point and the Modbus servers
            self.mqtt = None
            self.log.error("mqtt", "MQTT disabled: %s: %s" % (type(e).__name__, e))
        self.http = None  # HTTP /cnf API (docs/http.md); http/ is imported only when http_port is set
        if self.config.get("http_port"):
            self._init_http()
        self.ocpp = None
        if self.config.get("ocpp_url"):  # no backend named: the OCPP package is not even imported
            try:
                from loadpilot.ocpp.service import OcppService
                self.ocpp = OcppService(self.config, self.site, self.log, self.hal, self.evse, self.hal.serial(),
                                        VERSION)
                self.ocpp.restart = self.restart
                if self.sessions is not None:  # transactions come from the session journal (ocpp/tx.py)
                    self.ocpp.attach_sessions(self.sessions, fs_root, lambda: self.authorizer)
                if self.authorizer is not None:
                    self.authorizer.remote = self.ocpp.check_id
                if self.evse_control is not None:  # Modbus and OCPP availability: each side sees the other's
                    self.ocpp.control = self.evse_control
                    self.evse_control.ocpp_status = self.ocpp.status_index
            except Exception as e:  # a bad OCPP setting must not stop the charge point and the Modbus servers
                self.ocpp = None
                self.log.error("ocpp", "OCPP disabled: %s: %s" % (type(e).__name__, e))
        from loadpilot.devices.service import DeviceService
        self.device_service = DeviceService(self.config, self.site, self.setpoints, self.hal, self.log,
                                            self.supervisor, self._devices_prepare, self._devices_applied,
                                            tcp_own=lambda: self._socket_plan()[3])
        c = self._ctl  # one bound method for the views (a lambda each would cost heap)
        self.ctl_handlers = {"status": c, "site": self._ctl_site, "loop_reset": c, "modules": c, "heap": c,
                             "sockets": c}
        if self.sessions is not None:
            self.ctl_handlers["sessions"] = self._ctl_sessions
        self.ctl_handlers.update(config_ctl.handlers(self.config))
        if self.mqtt is not None:
            self.ctl_handlers["mqtt"] = c
        if self.ocpp is not None:
            self.ctl_handlers["ocpp"] = self.ocpp.ctl
        if self.proxy is not None:
            self.ctl_handlers["proxy"] = c
        if self.http is not None:
            self.ctl_handlers["http"] = c
        if self.evse is not None:
            self.ctl_handlers.update(self.evse.ctl_handlers())
            self.ctl_handlers["evse_cmd"] = self._ctl_evse_cmd
            self.ctl_handlers["evse_control"] = c
        self.config.set("count_restart", self.config.get("count_restart") + 1)  # saved with the next commit

    def _ctl(self, req):
        op = req["op"]
        if op == "status":
            return self.status(req.get("gc", False))
        if op == "heap":  # status is 2 KB of JSON
            return self.heap(req.get("gc", False))
        if op == "loop_reset":  # measure a phase, not the boot
            return self.monitor.reset()
        if op == "modules":  # features that are off import nothing
            return loaded_modules()
        if op == "sockets":
            return self.sockets_view()
        return getattr(self, op).view()  # mqtt, proxy, http, evse_control

    def whitelist(self):
        """The local whitelist, read from flash on first use (sessions/whitelist.py)."""
        if self._whitelist is None:
            from loadpilot.sessions.whitelist import Whitelist
            self._whitelist = Whitelist(self.fs_root, self.log)
        return self._whitelist

    def users(self, make=True):
        """The user store (sessions/users.py), read from flash on first use; make False: None while no user
        exists (a box without users imports nothing of it)."""
        if self._users is None:
            if not make and not _exists(self._users_path()):
                return None
            from loadpilot.sessions.users import Users
            self._users = Users(self.fs_root, self.log)
            self._users.on_change = self._users_changed
        return self._users

    def _users_path(self):
        return self.fs_root + "/users.jsonl" if self.fs_root else "users.jsonl"

    def _users_changed(self):
        if self.authorizer is None:
            self._authorization()
        else:
            self.authorizer.users = self._users
            self.authorizer.users_changed()
        if self.manager is not None:
            self.manager._redecide = True  # a wallbox that gained users locks at once

    def _system_cmd(self, args, payload):
        name = args["cmd"]
        if self._system is None:
            from loadpilot.api.system_cmd import SystemCommands
            self._system = SystemCommands(self)
        return self._system.run(name, args, payload)

    def _module_cmd(self, args, payload):
        if args["cmd"] in _MODULE_CMDS[0][1]:
            from loadpilot.api import device_cmd as mod
        else:
            from loadpilot.api import ocpp_list_cmd as mod
        return mod.run(self, args)

    def _auth_changed(self, key):
        if key in ("devices", "free_charging") and self.authorizer is None:
            self._authorization()

    def _authorization(self):
        """The authorizer, once free charging is on or a wallbox requires authorization; until then nothing
        of sessions/auth.py is imported (docs/authorization.md). Once made, it stays (switched off it
        authorizes every car as "open")."""
        users = self.users(False)  # users.jsonl exists: its wallboxes charge only for their users (docs/users.md)
        if self.config.get("free_charging") or any(d.get("auth_required") for d in self.config.peek("devices")) or \
                users is not None:
            from loadpilot.sessions.auth import Authorizer
            a = self.authorizer = Authorizer(self.config, self.site, self.log, self.whitelist)
            if users is not None:
                a.users = users
                a.users_changed()
            if getattr(self, "ocpp", None) is not None:  # IDs the whitelist does not know: the backend decides
                a.remote = self.ocpp.check_id
            a.on_change = self._auth_granted
            self.commands.authorizer = a
            if self.local is not None:
                self.local.authorizer = a
                self.local.step(time.ticks_ms())  # no car plugged in from now on gets the last set-point
            if self.manager is not None:
                self.manager.authorizer = a
                self.setpoints.clear()  # set-points of a time without authorization: start limits until it decides
                self.manager._start_limits()
                self.manager._redecide = True

    def _auth_granted(self):
        if self.manager is not None:
            self.manager._redecide = True  # a car just authorized starts now, not at the end of the cycle
    def _init_http(self):
        try:
            if self.evse is not None:  # the modbus command reads and writes the box's own register images
                from loadpilot.api.modbus_cmd import ModbusCommand
                slave = self.evse_slave
                if slave is None:  # no slave port: the images exist for the command and refresh per request
                    from loadpilot.registers.evse_slave import EvseSlaveService
                    slave = EvseSlaveService(self.config, self.commands, self.evse, self.evse_control, self.log,
                                             self.hal.serial(), on_change=self.local.step)
                self.commands.add_command("modbus", ModbusCommand(slave, refresh=self.evse_slave is None))
            from loadpilot.power_history import PowerHistory  # the Dashboard plot's last hours (docs/webui.md)
            h = self.manager.history = PowerHistory(self.site, self.started_ms)
            self.commands.add_command("get_power_history", h.command)
            from loadpilot.http.service import HttpService
            self.http = HttpService(self.config, self.commands, self.site, self.log, self.evse,
                                    www=(self.fs_root + "/www") if self.fs_root else "www",
                                    host=self.hal.listen_host, port=self.config.get("http_port"))
        except Exception as e:  # a bad HTTP setting must not stop the charge point and the Modbus servers
            self.http = None
            self.log.error("http", "HTTP disabled: %s: %s" % (type(e).__name__, e))

    def _socket_plan(self):
        """(need, uses, servers) of the running configuration (schema.socket_plan on the board's budget)."""
        return schema.socket_plan(self.config.secret, self.config.budget)  # plain values: broker URLs compared

    def sockets_view(self):
        need, uses, servers, tcp_own = self._socket_plan()
        return {"board": self.board["name"], "budget": self.config.budget["sockets"], "need": need,
                "uses": [{"what": w, "sockets": n} for w, n in uses],
                "servers": [{"setting": s[0], "port": s[1], "max_clients": s[2], "max_pending": s[3]}
                            for s in servers], "tcp_devices_connected": tcp_own}

    def _configure_site(self):
        """The Site's devices: the configured ones, and the board's own charge point (codes.local_evse_id)."""
        devices = self.config.get("devices")
        local = local_evse_id(devices, self.evse is not None)
        ids = [d["dev_id"] for d in devices]
        if local is not None and local not in ids:
            ids.insert(0, local)
        if self.evse is not None and local is None:
            self.log.error("evse", "E1 is a remote wallbox and no device has address \"evse\": the local charge "
                                   "point has no dev_id and offers no current")
        self.site.local_id = local
        self.site.configure(ids)

    def _init_sessions(self, fs_root):
        """The session journal (recovers sessions a power cut left open) and the tracker; a flash that cannot
        hold it costs the history, not the charge point."""
        from loadpilot.sessions.journal import Journal
        from loadpilot.sessions.tracker import SessionTracker, wall_now
        try:
            return SessionTracker(self.site, Journal(fs_root, self.log, wall=wall_now), self.log, self._session_auth)
        except OSError as e:
            self.log.error("sessions", "session journal disabled: %s" % e)
            return None

    def _soft_meter_cmd(self, args, payload):
        from loadpilot.api import soft_meter_cmd  # imported on the first soft_meter command
        return soft_meter_cmd.run(self.commands, self.soft_meter, args)

    def _ctl_sessions(self, req):
        from loadpilot.sessions import history
        return history.status(self.sessions)

    def _session_auth(self, dev_id):
        """(idTag, method) of the car at dev_id for its session, from the authorizer when there is one."""
        a = self.authorizer  # sessions/auth.py, made once authorization is configured
        return a.auth_of(dev_id) if a is not None else _OPEN_AUTH  # authorization off: every car charges

    def _init_evse(self, board):
        from loadpilot.evse.control import EvseControl
        from loadpilot.evse.task import EvseTask
        cfg = self.config
        energy = {}
        for i in (0, 1):
            energy[i] = (cfg.get("s0_%d_energy_wh" % (i + 1)), cfg.get("s0_%d_pulses" % (i + 1)))

        def persist_s0(index, wh, pulses):
            cfg.set_many({"s0_%d_energy_wh" % (index + 1): wh, "s0_%d_pulses" % (index + 1): pulses})

        try:
            self.evse = EvseTask(self.hal, board, log=self.log, persist_s0=persist_s0, s0_energy=energy,
                                 settings={"pulses_per_kwh": cfg.get("s0_1_pulses_per_kwh")})
            self.evse_control = EvseControl(cfg)
        except Exception as e:  # a bad EVSE pin must not take the manager and the APIs down with it
            self.evse = None
            self.log.error("evse", "local charge point disabled: %s: %s" % (type(e).__name__, e))

    def _ctl_evse_cmd(self, req):
        """The EVSE's control-socket commands; "enable" goes through the command layer to the one writer."""
        if "enable" in req:
            self.commands.evse_set({"charging_enable": 1 if req["enable"] else 0})
            self.local.step(time.ticks_ms())
        return self.evse.ctl_handlers()["evse_cmd"](req)

    def _ctl_site(self, req):
        """Readings pushed by the simulator or a test: {"readings": {"M1": {...}, ...}}."""
        self.site.push(req["readings"], time.ticks_ms())
        return self.site.version

    def status(self, collect=False):
        m = self.monitor
        if collect:  # live objects only: what the heap baseline is measured on
            gc.collect()
        m.sample_heap()
        return {
            "version": VERSION,
            "board": self.board["name"],
            "uptime_ms": time.ticks_diff(time.ticks_ms(), self.started_ms),
            "tasks": self.supervisor.view(),
            "loop": m.view(),
            "heap": {"free": m.heap_free, "alloc": m.heap_alloc, "min_free": m.heap_free_min},
            "devices": [self._device_view(d) for d in self.site.devices.values()],
            "device_comm": self.devices.view() if self.devices is not None else [],
        }

    def heap(self, collect=False):
        """The heap figures of status() alone: what tools/bench/heap.py samples, so the sample itself stays small."""
        if collect:
            gc.collect()
        m = self.monitor
        m.sample_heap()
        return {"free": m.heap_free, "alloc": m.heap_alloc, "min_free": m.heap_free_min}

    def _device_view(self, d):
        v = d.view()
        v.update(self.manager.device_view(d.dev_id))
        return v

    def start(self):
        sup = self.supervisor
        self._sockets = self._socket_plan()
        need, uses, servers, _ = self._sockets
        if need > self.config.budget["sockets"]:  # stored before a board change, or a board's defaults
            self.log.error("app", "sockets: %s" % schema.socket_error(need, uses, self.config.budget))
        tls, tls_uses = schema.tls_plan(self.config.secret)
        if tls > self.config.budget["tls_sessions"]:
            self.log.error("app", "TLS: %s" % schema.tls_error(tls, tls_uses, self.config.budget))
        sup.spawn("looplag", self.monitor.run)
        sup.spawn("config", self.config.flusher)
        wdt = self.hal.watchdog(self.board["watchdog_ms"])
        sup.spawn("watchdog", lambda: sup.feed_watchdog(wdt))
        if self.evse is not None:
            sup.spawn("evse", self.evse.run)
            sup.spawn("evse_local", self.local.run)
        sup.spawn("manager", self.manager.run)
        if self.sessions is not None:
            sup.spawn("sessions", self.sessions.run, critical=False)
        if self.hal.ctl_address() is not None:  # only the unix board has a host control socket
            sup.spawn("ctl", lambda: self.hal.serve_ctl(self.ctl_handlers), critical=False)
        if self.sunspec is not None:
            self._start_sunspec()
        if self.evse_slave is not None:
            self._start_evse_slave()
        self._start_rtu_slaves()
        self.device_service.start()
        sup.spawn("device_config", self.device_service.run, critical=False)
        if self.ocpp is not None:
            sup.spawn("ocpp", self.ocpp.run, critical=False)
        if self.mqtt is not None:
            self.mqtt.start(lambda name, factory: sup.spawn(name, factory, critical=False))
        if self.http is not None:
            self._start_http()

    @property
    def devices(self):
        """The current device layer (devices/layer.py), or None before start()."""
        return self.device_service.layer

    def _devices_prepare(self):
        """A new device list, before its layer is built: the Site's devices and the manager's chargepoints (the
        local charge point's dev_id may have changed with the list)."""
        self._configure_site()
        self._forget_removed()
        self.manager.build()

    def _forget_removed(self):
        """A device that left the list (the pages' Remove, set_params, del_device) leaves nothing that a later
        device of the same dev_id would inherit: override, last RFID, HTTP-input model, authorization, energy,
        the users' assignment to it."""
        devs = self.site.devices
        c = self.commands
        a = self.authorizer
        for d in (c.overrides, c.rfids, c.http_info, a.slots if a is not None else {}):
            for k in [k for k in d if k not in devs]:
                del d[k]
        self.soft_meter.forget(devs)
        us = self.users(make=False)  # None without users: nothing imported
        for n in range(len(us) if us is not None and not us.damaged else 0):
            keep = [x for x in us.dev_ids(n) if x in devs]
            if len(keep) != len(us.dev_ids(n)):  # the user's wallbox went: so does its place in get_users
                try:
                    us.set({"dev_ids": keep}, n)
                    self.log.info("users", "user %r: removed wallboxes taken off" % us.name(n))
                except Exception as e:  # a full flash: the list still applies, the user keeps a stale entry
                    self.log.warn("users", "user %r keeps a removed wallbox: %s" % (us.name(n), e))

    def _devices_applied(self):
        if self.mqtt is not None:
            self.mqtt.attach_devices()
        if self.sunspec is not None:
            self.sunspec.changed.set()  # the SunSpec images follow the new Site

    def _start_rtu_slaves(self):
        """One RS485 bus is one slave: the SunSpec server, or the local charge point's map, never both."""
        wanted = []
        if self.sunspec is not None and self.config.get("modbus_rtu_port"):
            wanted.append(("modbus_rtu_port", self.config.get("modbus_rtu_port"), self.sunspec_router))
        if self.evse_slave is not None and self.config.get("slave_rtu_port"):
            wanted.append(("slave_rtu_port", self.config.get("slave_rtu_port"), self.evse_slave.routers["rtu"]))
        if len(wanted) == 2 and wanted[0][1].split(",")[0] == wanted[1][1].split(",")[0]:
            self.log.error("modbus", "modbus_rtu_port and slave_rtu_port both name %s; a bus serves one of them: "
                                     "serving the SunSpec server only" % wanted[0][1].split(",")[0])
            wanted.pop()
        if not wanted:
            return
        from loadpilot.modbus import serial_settings
        from loadpilot.modbus.rtu_slave import RtuSlave
        for key, com, router in wanted:
            try:
                st = serial_settings.parse(com)
                uart = self.hal.uart(st.board_uart(), *st.uart_args())
            except (ValueError, OSError) as e:
                self.log.error("modbus", "%s %s: %s" % (key, com, e))
                continue
            slave = RtuSlave(uart, st, router)
            self.supervisor.spawn("rtu_" + st.board_uart(), slave.run)

    def _serve_tcp(self, name, setting, port, router):
        """A Modbus TCP server task. Non-critical: a port that cannot be bound must not reset the board."""
        taken = self._tcp_ports.get(port)
        if taken is not None:
            self.log.error("modbus", "%s: port %d is already used by %s; %s not served" % (setting, port, taken, name))
            return
        self._tcp_ports[port] = setting
        from loadpilot.modbus.tcp_server import ModbusTcpServer
        host = self.hal.listen_host
        clients, pending = schema.SERVER_LEAST
        for s in self._sockets[2]:  # sized from the board's socket budget (schema.socket_plan)
            if s[1] == port:
                clients, pending = s[2], s[3]
        self.supervisor.spawn(name + "_tcp", lambda: ModbusTcpServer(router, host=host, port=port, log=self.log,
                                                                    max_clients=clients, max_pending=pending).run(),
                              critical=False)

    def _start_evse_slave(self):
        routers = self.evse_slave.routers
        base = self.config.get("pb_tcp_port")
        if base:
            self._serve_tcp("pb_evse", "pb_tcp_port", base, routers["pb_evse"])
            for i in range(len(self.evse.s0)):
                self._serve_tcp("pb_s0_%d" % (i + 1), "pb_tcp_port+%d" % (i + 1), base + 1 + i,
                                routers["pb_s0_%d" % (i + 1)])
        if self.config.get("omcci_tcp_port"):
            self._serve_tcp("omcci", "omcci_tcp_port", self.config.get("omcci_tcp_port"), routers["omcci"])
        self.supervisor.spawn("evse_slave", self.evse_slave.run)

    def _start_http(self):
        port = self.config.get("http_port")
        taken = self._tcp_ports.get(port)
        if taken is not None:
            self.log.error("http", "http_port: port %d is already used by %s; HTTP not served" % (port, taken))
            return
        self._tcp_ports[port] = "http_port"
        for s in self._sockets[2]:  # clients and waiting places sized from the board's socket budget
            if s[0] == "http_port":
                self.http.server.resize(s[2], s[3])
        self.supervisor.spawn("http", self.http.run, critical=False)

    def _start_sunspec(self):
        port = self.config.get("modbus_tcp_port")
        if port:
            router = self.proxy.router if self.proxy is not None else self.sunspec_router
            self._serve_tcp("sunspec", "modbus_tcp_port", port, router)
        self.supervisor.spawn("sunspec", lambda: self.sunspec.run(self.sunspec_router))

    def shutdown(self):
        """A planned stop: changes still inside the commit delay are written and open sessions are journalled as
        Reboot, not found as a power loss at the next boot. Every planned restart and stop passes here."""
        self.soft_meter.flush()
        self.config.flush()
        if self.sessions is not None:
            from loadpilot.codes import STOP_REBOOT
            self.sessions.stop_all(STOP_REBOOT)

    def restart(self):
        """restart command, OCPP Reset: shut down, then reset the board (unix port: SystemExit, the process ends)."""
        self.shutdown()
        self.hal.reset()

    async def run(self):
        self.start()
        gc.collect()
        self.log.info("app", "LoadPilot %s ready on board %s" % (VERSION, self.board["name"]))
        while True:
            await asyncio.sleep_ms(1000)


def _exists(path):
    import os
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def loaded_modules():
    """The loadpilot modules imported so far, sorted: the evidence that a feature that is off costs nothing."""
    return sorted(m for m in sys.modules if m.startswith("loadpilot"))


def _board_path(board_path, fs_root):
    if fs_root and not board_path.startswith("/"):
        try:
            open(board_path).close()
            return board_path
        except OSError:
            return fs_root + "/" + board_path
    return board_path


def main(board_path="board.json", fs_root=""):
    log = Log()
    try:
        board = board_mod.load(_board_path(board_path, fs_root))
    except board_mod.BoardError as e:
        # stay at the REPL on a device so the installer can fix the file with mpremote
        log.error("boot", str(e))
        if sys.platform != "esp32":
            sys.exit(2)
        return
    app = App(board, fs_root, log)
    try:
        asyncio.run(app.run())
    except KeyboardInterrupt:
        app.shutdown()
        log.info("app", "stopped")
    finally:
        asyncio.new_event_loop()
