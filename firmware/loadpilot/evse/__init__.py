# The local charge point: CP/PP signalling (pilot), the session state machine, the effective current,
# S0 metering and the asyncio task that wires them to the HAL. See docs/evse.md.
