# Control-socket ops for the config store (host tests and `make sim`); every reply is redacted.
#   {"op": "config_get"}                      -> {"values": view, "dirty": bool, "saves": n, "seq": n}
#   {"op": "config_get", "key": k}            -> the value of k as view() shows it
#   {"op": "config_set", "key": k, "value": v} or {"op": "config_set", "values": {...}} -> changed keys
#   {"op": "config_flush"}                    -> {"saved": bool, "saves": n, "seq": n}


def handlers(store):
    def get(req):
        key = req.get("key")
        if key is not None:
            return store.public(key)
        return {"values": store.view(), "dirty": store.dirty, "saves": store.saves, "seq": store.seq}

    def set_(req):
        if "values" in req:
            return store.set_many(req["values"])
        return [req["key"]] if store.set(req["key"], req.get("value")) else []

    def flush(req):
        saved = store.flush()
        return {"saved": saved, "saves": store.saves, "seq": store.seq}

    return {"config_get": get, "config_set": set_, "config_flush": flush}
