// LoadPilot esp32_devkit: an ESP32-WROOM-32 DevKit running the frozen LoadPilot image
#define MICROPY_HW_BOARD_NAME "LoadPilot esp32_devkit"
#define MICROPY_HW_MCU_NAME "ESP32"
