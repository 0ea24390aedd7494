# ESP32 image (`make firmware BOARD=esp32_devkit`): the port's stock frozen modules, then LoadPilot.
include("$(PORT_DIR)/boards/manifest.py")
include("manifest.py")
