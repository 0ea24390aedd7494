import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "firmware"))

import mpshim  # noqa: E402

mpshim.install()

# as the app does at boot: a device list being set is checked for drivers, addresses and definitions
from loadpilot.config import schema  # noqa: E402
from loadpilot.devices.checks import check_devices  # noqa: E402

schema.on_new("devices", check_devices)
