"""Memory budget of the boot profiles, on the MicroPython binary (64-bit unix port).

For each profile it boots the firmware from .py and from .mpy (as `make deploy` ships it), waits for the loop
to settle, asks for gc.collect() and prints the live heap and how many loadpilot modules are loaded:

- bench:   what tools/bench/heap.py boots (SunSpec TCP on, Power Brain map off);
- default: the documented defaults (SunSpec TCP and the Power Brain map on), on free ports;
- core:    default + the MQTT API and dev_info on a mosquitto broker (issue 13's core profile).

    .venv/bin/python tools/bench/mem_budget.py [--before REV] [--imports MODULE ...] [--modules]

--imports prints the heap each module costs when imported alone in a fresh interpreter (the module and what it
imports); --modules lists the loaded modules of each profile; --before REV measures the firmware of git revision
REV too, beside this one.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "host_tests"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "host_tests", "integration"))
sys.path.insert(0, os.path.join(HERE, ".."))
from firmware_proc import FIRMWARE, Firmware, free_port, micropython_binary  # noqa: E402
import deploy  # noqa: E402


def profiles(broker_port):
    mqtt = "mqtt://127.0.0.1:%d" % broker_port
    return (("bench", {"modbus_tcp_port": free_port(), "pb_tcp_port": 0}),
            ("default", {"modbus_tcp_port": free_port(), "pb_tcp_port": free_port()}),
            ("core", {"modbus_tcp_port": free_port(), "pb_tcp_port": free_port(), "mqtt_url": mqtt,
                      "mqtt_api_url": "mqtt", "mqtt_dev_info_url": "mqtt"}))


def measure(config, main=None):
    with Firmware(main=main, config=config) as fw:
        fw.wait_port(config["modbus_tcp_port"])
        time.sleep(2.0)
        st = fw.ctl("status", gc=True)
        try:
            mods = fw.ctl("modules")
        except RuntimeError:  # a firmware from before the modules op
            mods = []
        return st["heap"]["alloc"], mods


_IMPORT = """
import gc, sys
sys.path.insert(0, %r)
gc.collect()
a = gc.mem_alloc()
import %s
gc.collect()
print(gc.mem_alloc() - a)
"""


def import_cost(module, root=FIRMWARE):
    p = subprocess.run([micropython_binary(), "-c", _IMPORT % (root, module)], capture_output=True, text=True,
                       timeout=30)
    return p.stdout.strip().splitlines()[-1] if p.returncode == 0 else "error: " + (p.stdout + p.stderr)[-200:]


def firmware_at(rev, into):
    """The firmware/ tree of git revision rev, extracted into the directory into."""
    root = os.path.join(HERE, "..", "..")
    data = subprocess.run(["git", "-C", root, "archive", rev, "firmware"], capture_output=True, check=True).stdout
    os.makedirs(into, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", into], input=data, check=True)
    return os.path.join(into, "firmware")


def main():
    args = sys.argv[1:]
    before = args[args.index("--before") + 1] if "--before" in args else None
    if "--imports" in args:
        mods = [a for a in args[args.index("--imports") + 1:] if not a.startswith("--")]
        tree = tempfile.mkdtemp(prefix="loadpilot-mpy-")
        try:
            old = firmware_at(before, tree) if before else None
            print("heap of one import in a fresh interpreter (module and what it imports), after gc.collect(), "
                  "64-bit unix binary, from .py")
            print("  %-36s %12s %9s" % ("module", before or "", "now"))
            for m in mods:
                print("  %-36s %12s %9s" % (m, import_cost(m, old) if old else "", import_cost(m)))
        finally:
            shutil.rmtree(tree, ignore_errors=True)
        return
    from mqtt_peers import Mosquitto
    broker = Mosquitto().start()
    tree = tempfile.mkdtemp(prefix="loadpilot-mpy-")
    try:
        mains = [("now", os.path.join(FIRMWARE, "main.py"), _mpy_tree(FIRMWARE, os.path.join(tree, "now")))]
        if before:
            old = firmware_at(before, os.path.join(tree, "src"))
            mains.insert(0, (before, os.path.join(old, "main.py"), _mpy_tree(old, os.path.join(tree, "old"))))
        print("heap after boot and gc.collect(), unix_sim board, MicroPython 1.29 unix binary (64-bit objects)")
        print("  %-8s %-8s %10s %10s %8s" % ("profile", "firmware", "from .py", "from .mpy", "modules"))
        for name, cfg in profiles(broker.port):
            for label, main_py, main_mpy in mains:
                a, mods = measure(dict(cfg), main_py)
                b, _ = measure(dict(cfg), main_mpy)
                print("  %-8s %-8s %8d B %8d B %8s" % (name, label, a, b, len(mods) or "-"))
                if "--modules" in args and mods:
                    print("    " + " ".join(m[len("loadpilot."):] for m in mods if m != "loadpilot"))
    finally:
        shutil.rmtree(tree, ignore_errors=True)
        broker.close()


def _mpy_tree(firmware_dir, into):
    """firmware_dir compiled as `make deploy` ships it (.mpy files and main.py) into into; -> its main.py."""
    os.makedirs(into)
    saved = deploy.FIRMWARE
    deploy.FIRMWARE = firmware_dir
    try:
        for remote, local in deploy.compile_firmware(into):
            if remote == "main.py":
                shutil.copy(local, os.path.join(into, "main.py"))
    finally:
        deploy.FIRMWARE = saved
    return os.path.join(into, "main.py")

if __name__ == "__main__":
    main()
