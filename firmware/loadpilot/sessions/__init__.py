# Charging sessions (docs/sessions.md): the power-cut-safe journal on flash (journal.py), the tracker that opens
# and closes sessions from the Site (tracker.py), the dashboard figures and CSV export (history.py); authorization
# (ids.py, whitelist.py, auth.py) decides who may charge.
