# Charging Manager decision core: pure allocation of charging current (see docs/manager.md).
from .model import *  # noqa: F401,F403
from .state import State, elapsed  # noqa: F401
from .allocate import allocate  # noqa: F401
