# The Charging Manager's device layer: drivers for external wallboxes and meters, bus polling, comm state.
