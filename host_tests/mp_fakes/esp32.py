# Import-check stand-in for the ESP32 `esp32` module (see machine.py here).
