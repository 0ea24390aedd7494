# LoadPilot's esp32_devkit image: MicroPython's ESP32_GENERIC settings (ports/esp32/boards/ESP32_GENERIC,
# paths relative to ports/esp32) plus LoadPilot's own fragment, last so its values win. tools/firmware.py
# builds with BOARD_DIR pointing here and checks the fragment against boards/esp32_devkit.json first.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/sdkconfig.loadpilot
)
