# Configuration: schema.py (the settings table and validation), store.py (the flash-wear-aware store and
# its API, described at the top of that file), migrate.py (older file versions), ctl.py (host control ops).
