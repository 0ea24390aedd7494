# The one command layer (commands.py) and the JSON views, shared by Modbus, MQTT, HTTP and OCPP.
