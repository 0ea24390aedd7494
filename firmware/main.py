# LoadPilot boot: pick the board file and filesystem root, then hand over to the app.
# On the device both are defaults (board.json in /); on the host LOADPILOT_BOARD and LOADPILOT_FS set them.
import os

_getenv = getattr(os, "getenv", lambda name: None)  # the ESP32 port has no environment

from loadpilot import app

app.main(_getenv("LOADPILOT_BOARD") or "board.json", _getenv("LOADPILOT_FS") or "")
