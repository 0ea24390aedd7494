"""The whitelist on the real MicroPython binary, on littlefs over the counting, power-cuttable flash model
(hal/flashdev.py): a power cut at any flash operation of an add, a delete, a compaction, a CSV import or a
delete-all leaves exactly the old or the new list, and the list stays writable. Figures: tools/bench."""
import pytest

from test_config_flash import run_mp

pytestmark = pytest.mark.mp


def test_power_cut_at_every_flash_operation_of_a_whitelist_write_keeps_old_or_new():
    rc, out, results = run_mp("import whitelist_flash_mp as w\nw.report(w.power_cut())\n", timeout=300)
    assert rc == 0, out
    r = results[0]
    assert r["failures"] == [], r["failures"][:10]
    assert set(r["ops"]) == {"add", "delete that compacts", "import", "delete all"}
    assert all(n > 0 for n in r["ops"].values()), r["ops"]
    assert r["outcomes"]["old"] > 0 and r["outcomes"]["new"] > 0
    assert r["outcomes"]["old"] + r["outcomes"]["new"] == r["cut_points"]


def test_one_change_appends_one_entry_instead_of_rewriting_the_list():
    rc, out, results = run_mp("import whitelist_flash_mp as w\nw.report(w.wear(1000, 100))\n", timeout=300)
    assert rc == 0, out
    r = results[0]
    assert r["log_bytes"] == 1000 * 13  # one 13-byte entry per add, no compaction while only adding
    # littlefs copies a file's last block on each append: about one erase per change, whatever the list's size,
    # where rewriting the whole 13 KB list costs several (the baseline, measured in the same run)
    assert r["append_erases"] <= 1.2 * r["changes"], r
    assert r["append_erases"] < r["rewrite_erases"] and r["append_programs"] < r["rewrite_programs"], r
