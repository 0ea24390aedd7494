"""The supervisor, loop-lag monitor and flash model, on the real MicroPython binary."""
import pytest

from firmware_proc import run_snippet

pytestmark = pytest.mark.mp


def test_supervisor_restarts_a_crashed_task():
    code = """
import asyncio
from loadpilot import supervisor as S
from loadpilot.log import Log
S.BACKOFF_FIRST_MS = 20
log = Log(console_level=100)
runs = [0]
async def flaky():
    runs[0] += 1
    if runs[0] < 3:
        raise ValueError("sensor %d" % runs[0])
    await asyncio.sleep_ms(10000)
async def main():
    s = S.Supervisor(log)
    info = s.spawn("flaky", flaky)
    await asyncio.sleep_ms(300)
    print("RUNS", runs[0], "RESTARTS", info.restarts, "STATE", info.state)
    for l in log.lines():
        print("LOG", l[1], l[3])
    s.stop()
asyncio.run(main())
"""
    rc, out = run_snippet(code)
    assert rc == 0, out
    assert "RUNS 3 RESTARTS 2 STATE running" in out
    assert "LOG ERROR task flaky crashed (ValueError: sensor 1); restart in 20 ms" in out
    assert "LOG ERROR task flaky crashed (ValueError: sensor 2); restart in 40 ms" in out


def test_a_task_that_blocks_the_loop_shows_up_in_the_lag_monitor():
    code = """
import asyncio, time
from loadpilot.looplag import LoopLagMonitor
mon = LoopLagMonitor()
async def hog():
    await asyncio.sleep_ms(200)
    t = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t) < 80:  # a CPU-bound section that never yields
        pass
async def main():
    asyncio.create_task(mon.run())
    await asyncio.sleep_ms(150)
    print("BEFORE", mon.worst_ms)
    await hog()
    await asyncio.sleep_ms(50)
    print("AFTER", mon.worst_ms, mon.percentile_ms(99), mon.samples)
asyncio.run(main())
"""
    rc, out = run_snippet(code)
    assert rc == 0, out
    before = int(out.split("BEFORE ")[1].split()[0])
    worst = int(out.split("AFTER ")[1].split()[0])
    assert worst >= 70 > before


def test_flash_device_counts_erases_and_cuts_power_mid_write():
    code = """
import os
from loadpilot.hal.flashdev import FlashBlockDevice, PowerCut
dev = FlashBlockDevice(block_count=32, block_size=4096)
os.VfsLfs2.mkfs(dev)
os.mount(os.VfsLfs2(dev), "/flash")
with open("/flash/cfg.json", "w") as f:
    f.write("old" * 300)
os.umount("/flash")
print("ERASES", dev.total_erases(), "PROGRAMS", dev.programs, "MAXBLOCK", max(dev.erases))
os.mount(os.VfsLfs2(dev), "/flash")
dev.cut_power_after(2)
try:
    with open("/flash/cfg.json", "w") as f:
        f.write("new" * 300)
    print("NOCUT")
except OSError as e:
    print("CUT", e.args[0])
try:
    os.umount("/flash")
except OSError:
    pass
print("POWERED", dev.powered)
dev.power_on()
os.mount(os.VfsLfs2(dev), "/flash")
print("AFTER", open("/flash/cfg.json").read()[:3])
"""
    rc, out = run_snippet(code)
    assert rc == 0, out
    erases = int(out.split("ERASES ")[1].split()[0])
    assert erases > 0 and int(out.split("PROGRAMS ")[1].split()[0]) > 0
    assert "CUT 5" in out and "POWERED False" in out
    assert "AFTER old" in out  # littlefs kept the old file whole across the cut
