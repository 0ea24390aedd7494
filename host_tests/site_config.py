"""A full site's configuration, as an installer would write it: 25 wallboxes, 25 meters of which four are
user-defined MQTT meters with definitions of about 4 KB, 32 Charging Manager variables, MQTT with credentials.
Plain Python, so the unit tests (CPython) and the driver scripts on the MicroPython binary build the same one."""


def definition(n):
    """A user-defined MQTT meter (rtype 2) with three phases and many user variables: just under 4 KB."""
    topic = "site/building-%d/distribution-board/sub-meter/status" % n
    d = {"rtype": 2, "mtype": 1, "manufacturer": "Example Metering GmbH %d" % n,
         "type_designation": {"fixed": "Sub-distribution meter %d" % n},
         "power_w": {"address": topic, "type": "float", "query": "total.active_power"},
         "import_wh": {"address": topic, "type": "float", "query": "total.energy_import", "resolution": 1000}}
    for p in (1, 2, 3):
        d["current_l%d" % p] = {"address": topic, "type": "float", "query": "phases[%d].current" % (p - 1),
                                "resolution": 1000}
        d["voltage_l%d" % p] = {"address": topic, "type": "float", "query": "phases[%d].voltage" % (p - 1)}
    i = 0
    while True:
        key = "user_var_%02d" % i
        d[key] = {"address": topic, "type": "float", "query": "extra.channel_%02d.value" % i}
        if len(_dumps(d)) > 3900:
            del d[key]
            return d
        i += 1


def _dumps(obj):
    import json
    return json.dumps(obj)


def full_site(tag=0, net="192.168.10", box_port=4701, broker_port=1883):
    """net: the site's /24 (tests that boot the firmware pass a loopback one, so nothing leaves the host)."""
    devs = []
    for i in range(1, 26):
        devs.append({"dev_id": "E%d" % i, "driver": "evse_powerbrain",
                     "address": "%s.%d:%d" % (net, 10 + i, box_port),
                     "id": 1, "name": "Parking bay %d (tag %d)" % (i, tag), "min_charging_cur": 6000,
                     "max_charging_cur": 16000 + 1000 * (i % 17), "prio": 1 + i % 10, "pv_mode": "min_pv",
                     "publish_modbus": True, "publish_mqtt": True, "wiring": ("123", "231", "312")[i % 3],
                     "group": 1 + i % 4})
    for i in range(1, 22):
        devs.append({"dev_id": "M%d" % i, "driver": "meter_sdm630", "address": "COM1,19200,8,n,1",
                     "id": 100 + i, "name": "Sub-meter %d" % i, "role": 3 if i == 1 else 0, "publish_mqtt": True})
    for i in range(22, 26):
        devs.append({"dev_id": "M%d" % i, "driver": "meter_mqtt",
                     "address": "mqtt://meter:pw-%d@%s.2:%d" % (i, net, broker_port),
                     "name": "User meter %d" % i, "definition": definition(i)})
    cm_vars = [{"name": "site_variable_%02d" % i,
                "expr": "min(M1.power_w - M%d.power_w - M%d.power_w, E%d.power_w * 3 + E%d.power_w * 2) + "
                        "max(0, M22.user_var_%02d - M23.user_var_%02d) * %d / 100 + site_variable_%02d"
                        % (2 + i % 20, 3 + i % 19, 1 + i % 25, 2 + i % 24, i, i, i, (i + 1) % 32)}
               for i in range(32)]
    return {"title": "Car park %d" % tag, "max_total_current": 250000 + tag, "mqtt_enabled": True,
            "mqtt_url": "mqtt://lp:site-secret-%d@%s.2:%d" % (tag, net, broker_port),
            "admin_pwd": "admin-secret-%d" % tag,
            "group_limits": [{"group": g, "l1": 63000, "l2": 63000, "l3": 63000} for g in range(1, 5)],
            "devices": devs, "cm_vars": cm_vars}
