"""The core profile's heap budget, guarded on the 64-bit venv binary (CI has no 32-bit build).

The core profile (tools/bench/heap.py: the local box, SunSpec TCP, the Power Brain map, the MQTT API with
get/dev_info on a mosquitto broker, a pushed grid meter) boots from the .mpy files a deploy ships; after the
loop settles and gc.collect(), its live heap must stay under CORE_64BIT_CEILING.

How the ceiling was derived (November 2026: MicroPython v1.28.0 built for the unix port in 32-bit mode with
boards/manifest_unix.py, and the venv's 1.29 binary for 64-bit; `tools/bench/heap.py --micropython-src DIR
--profiles core --no-bisect --jobs 2`; re-derived after the soft meter and non-blocking DNS merges and the
run-time savings that followed them (DNS query code, Modbus TCP slot buffers, MQTT Dedup for QoS 0, the JSON byte-class
table), on the esp32_devkit figures: heap_kb 112, 16 sockets; bytes from `--json`):

    core, live heap after boot     64-bit .mpy  441440 B (431.1 KB)    32-bit frozen  83200 B (81.2 KB)
    ratio 64-bit / 32-bit frozen   441440 / 83200 = 5.31
    32-bit budget                  81.2 KB measured + 2 KB of slack = 83.2 KB (85248 B)
    64-bit ceiling                 85248 B x 5.31 = 452666 B (442.1 KB)

(earlier derivations: after the sessions, authorization, HTTP, OCPP and system-command merges
435904 B / 81936 B = 5.32, ceiling 446794 B; before the import-time savings 465120 B / 115072 B = 4.04, ceiling 473164 B; after
them 430208 B / 101456 B = 4.24, ceiling 438856 B; after the run-time savings 409408 B / 80448 B = 5.09,
ceiling 419904 B. The ratio keeps rising because the savings are objects the firmware makes at import or at
run time (dicts, tuples built from non-constant names, closures), which weigh more in the frozen figure than in
the 64-bit one, which is mostly bytecode: a dict turned into a constant table with a lookup loop even adds
64-bit bytecode while it saves frozen heap.)

The ceiling is a ratchet: it stops the core profile from growing past what it measures today. The goal
(issue 13) is a lowest free heap of at least 24 KB at the ESP32's 112 KB; measured now: 24.3 KB over 60 s of
traffic (22.0 KB after the soft meter and DNS merges, 23.3 KB before them), so the core profile meets the goal
on an esp32_devkit by 0.3 KB (docs/firmware.md, "Measured heap").

Re-derive it when the firmware's heap changes. The ratio drifts, because freezing moves bytecode and
constants out of the heap but not the objects made at import:

    tools/bench/heap.py --micropython-src DIR --profiles core --no-bisect

then set RATIO_64_TO_32_FROZEN = 64-bit boot / 32-bit frozen boot and BUDGET_32BIT_FROZEN = 32-bit frozen boot
+ 2 KB, here and in docs/firmware.md. Lower them when a change saves heap, so the saving is kept.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "bench"))
import heap  # noqa: E402  (tools/bench/heap.py: the same profile and boot as the benchmark)

pytestmark = pytest.mark.mp

KB = 1024
RATIO_64_TO_32_FROZEN = 5.31
BUDGET_32BIT_FROZEN = 83200 + 2 * KB
CORE_64BIT_CEILING = int(BUDGET_32BIT_FROZEN * RATIO_64_TO_32_FROZEN)


def test_core_profile_live_heap_after_boot_stays_under_the_64bit_ceiling():
    tree = heap.mpy_tree()
    try:
        variant = heap.Variant("64-bit venv binary, .mpy", None, os.path.join(tree, "main.py"))
        r = heap.boot(variant, "core", heap.BOOT_HEAP, 0)
    finally:
        import shutil
        shutil.rmtree(tree, ignore_errors=True)
    assert r["ok"], r["why"]
    for task in ("sunspec_tcp", "pb_evse_tcp", "mqtt_topics", "mqtt_answers"):
        assert task in r["tasks"], (task, r["tasks"])  # the profile really runs its servers
    alloc = r["boot"]["alloc"]
    assert alloc <= CORE_64BIT_CEILING, (
        "core profile: %.1f KB live after boot on the 64-bit binary, over the %.1f KB ceiling (%.0f KB on the "
        "32-bit frozen build x %.2f); see this module's docstring to re-derive it"
        % (alloc / KB, CORE_64BIT_CEILING / KB, BUDGET_32BIT_FROZEN / KB, RATIO_64_TO_32_FROZEN))
