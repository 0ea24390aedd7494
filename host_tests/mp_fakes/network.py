# Import-check stand-in for the ESP32 `network` module (see machine.py here).
STA_IF = 0


class WLAN:
    def __init__(self, which=STA_IF):
        pass

    def isconnected(self):
        return False
