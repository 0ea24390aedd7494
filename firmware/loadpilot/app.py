# The application: builds the object graph from the board file, starts every task under the supervisor,
# and answers status queries. Feature modules attach here as they arrive; none of them starts tasks itself.
import asyncio
import gc
import sys
import time

from loadpilot import VERSION, board as board_mod, hal as hal_mod
from loadpilot.log import Log
from loadpilot.looplag import LoopLagMonitor
from loadpilot.supervisor import Supervisor


class App:
    def __init__(self, board, fs_root="", log=None):
        self.board = board
        self.fs_root = fs_root
        self.log = log or Log()
        self.hal = hal_mod.load(board, fs_root)
        self.monitor = LoopLagMonitor()
        self.supervisor = Supervisor(self.log, self.monitor)
        self.started_ms = time.ticks_ms()
        self.devices = []  # device views; the Charging Manager fills this
        self.ctl_handlers = {"status": lambda req: self.status()}
        self.evse = None
        if board["features"].get("evse"):
            try:
                from loadpilot.evse.task import EvseTask
                self.evse = EvseTask(self.hal, board, log=self.log)
                self.ctl_handlers.update(self.evse.ctl_handlers())
            except Exception as e:  # a bad EVSE pin must not take the manager and the APIs down with it
                self.log.error("evse", "local charge point disabled: %s: %s" % (type(e).__name__, e))

    def status(self):
        m = self.monitor
        m.sample_heap()
        return {
            "version": VERSION,
            "board": self.board["name"],
            "uptime_ms": time.ticks_diff(time.ticks_ms(), self.started_ms),
            "tasks": self.supervisor.view(),
            "loop": m.view(),
            "heap": {"free": m.heap_free, "alloc": m.heap_alloc, "min_free": m.heap_free_min},
            "devices": self.devices,
        }

    def start(self):
        sup = self.supervisor
        sup.spawn("looplag", self.monitor.run)
        wdt = self.hal.watchdog(self.board["watchdog_ms"])
        sup.spawn("watchdog", lambda: sup.feed_watchdog(wdt))
        if self.evse is not None:
            sup.spawn("evse", self.evse.run)
        if self.hal.ctl_address() is not None:  # only the unix board has a host control socket
            sup.spawn("ctl", lambda: self.hal.serve_ctl(self.ctl_handlers), critical=False)

    async def run(self):
        self.start()
        gc.collect()
        self.log.info("app", "LoadPilot %s ready on board %s" % (VERSION, self.board["name"]))
        while True:
            await asyncio.sleep_ms(1000)


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
        log.info("app", "stopped")
    finally:
        asyncio.new_event_loop()
