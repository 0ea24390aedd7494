# Unix port in 32-bit mode (`make firmware`, tools/bench/heap.py): the standard variant's frozen modules, then
# LoadPilot, so the host runs the same frozen image an ESP32 does, at the ESP32's word size.
include("$(PORT_DIR)/variants/standard/manifest.py")
include("manifest.py")
