# del_device and reset_device of reference/http-api.md in the command layer (docs/http.md). Devices are the
# `devices` setting; both commands go through set_params' checks or the device layer's own rebuild, so they
# reuse what adding and editing a device does. Imported on the first such command (app.py registers the names).
#
#   del_device&dev_id=E2     the device leaves the list (and the Site, the manager, the drivers) at once; its
#                            settings, runtime state and simulated energy are gone. The change is written to
#                            flash at once, so it holds after any reboot. The box's own charge point is refused.
#   reset_device&dev_id=E2   "deleted and recreated with the same settings": its DeviceState (readings, state,
#                            communication errors and their counter, allocation) starts from nothing, its
#                            override and last RFID end, and the device layer is rebuilt, so its driver starts
#                            again with a fresh connection. Its settings and its energy count stay.
from loadpilot.api.commands import CommandError

NAMES = ("del_device", "reset_device")


def run(app, args):
    cmd = args.get("cmd")
    dev_id = args.get("dev_id", "")
    if not dev_id:
        raise CommandError("%s: needs dev_id" % cmd)
    site = app.site
    devices = app.config.get("devices")
    configured = [d for d in devices if d["dev_id"] == dev_id]
    if cmd == "del_device":
        if dev_id == site.local_id:
            raise CommandError("del_device: %s is this box's own charge point: it cannot be deleted (reset_device "
                               "restarts it)" % dev_id)
        if not configured:
            raise CommandError("del_device: unknown device %r" % dev_id)
        try:  # the same checks as any device list (a meter attached to it, for example): all or nothing
            app.commands.set_params({"devices": [d for d in devices if d["dev_id"] != dev_id]})
        except CommandError as e:
            raise CommandError("del_device: %s" % e)
        _forget(app, dev_id)
        if app.soft_meter.wh(dev_id):
            app.soft_meter.set(dev_id, 0)  # a later device of that name starts at 0 Wh
        app.config.flush()  # gone after any reboot, also a power cut within the commit delay
        app.log.info("devices", "%s deleted through the command layer" % dev_id)
        return {"ok": True}
    if site.device(dev_id) is None:
        raise CommandError("reset_device: unknown device %r" % dev_id)
    from loadpilot.site import DeviceState
    site.devices[dev_id] = DeviceState(dev_id)
    site.version += 1
    _forget(app, dev_id)
    if app.soft_meter.wh(dev_id):  # a box without its own meter keeps its simulated energy
        site.devices[dev_id].reading.import_wh = app.soft_meter.wh(dev_id)
    app.device_service.changed.set()  # drivers and connections made anew, the manager's chargepoints rebuilt
    app.log.info("devices", "%s reset through the command layer" % dev_id)
    return {"ok": True}


def _forget(app, dev_id):
    c = app.commands
    for d in (c.overrides, c.rfids, c.http_info):
        d.pop(dev_id, None)
