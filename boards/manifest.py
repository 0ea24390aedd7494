# LoadPilot's frozen image: firmware/loadpilot and the boot file main.py, compiled into the MicroPython build so
# their bytecode, strings and constant tables stay in flash instead of the GC heap (docs/firmware.md).
# Port-neutral: the port manifests boards/manifest_esp32.py and boards/manifest_unix.py include it after the
# port's own frozen modules (asyncio, ...). `make firmware` passes them as FROZEN_MANIFEST.
package("loadpilot", base_path="../firmware")
module("main.py", base_path="../firmware")
