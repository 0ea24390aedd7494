"""The user store on the real MicroPython binary, on littlefs over the counting, power-cuttable flash model
(hal/flashdev.py): a power cut at any flash operation of creating, changing or deleting a user (the first, a
32nd with 8 RFIDs, the last) leaves exactly the old or the new users, and the store stays writable; the limits
(32 users x 8 RFIDs) are refused with a clear error."""
import pytest

from test_config_flash import run_mp

pytestmark = pytest.mark.mp


def test_power_cut_at_every_flash_operation_of_a_user_change_keeps_old_or_new():
    rc, out, results = run_mp("import users_flash_mp as u\nu.report(u.power_cut())\n", timeout=600)
    assert rc == 0, out
    r = results[0]
    assert r["failures"] == [], r["failures"][:10]
    assert len(r["ops"]) == 5 and all(n > 0 for n in r["ops"].values()), r["ops"]
    assert r["outcomes"]["old"] > 0 and r["outcomes"]["new"] > 0
    assert r["outcomes"]["old"] + r["outcomes"]["new"] == r["cut_points"]


def test_32_users_with_8_rfids_fit_and_more_are_refused():
    rc, out, results = run_mp("import users_flash_mp as u\nu.report(u.full())\n", timeout=300)
    assert rc == 0, out
    r = results[0]
    assert r["users"] == 32 and r["after_boot"] == 32
    assert r["errors"] == ["the user list is full (32 users)", "rfids must be a list of at most 8 RFIDs/PINs"]
