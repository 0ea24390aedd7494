# MQTT transport: broker URLs (url), packets (packet), the asyncio client (client), shared connections
# (connections) and duplicate detection for incoming commands (dedup). Topics and commands live elsewhere.
