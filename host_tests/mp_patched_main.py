# Boots firmware/main.py on the MicroPython binary after running the code in LOADPILOT_TEST_PATCH (see
# firmware_proc.Firmware's patch=): a test shortens a firmware delay it would otherwise sit out (the manager's
# phase_down_delay_ms, the OCPP reconnect backoff) with the firmware's own code and nothing on the board.
import os
import sys

sys.path.insert(0, os.getenv("LOADPILOT_TEST_FIRMWARE"))
exec(os.getenv("LOADPILOT_TEST_PATCH"))
__import__("main")  # main.py boots the app as on the board
