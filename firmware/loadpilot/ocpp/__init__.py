# OCPP 1.6J charge point client (docs/ocpp.md). Nothing below is imported unless ocpp_url is set (app.py).
