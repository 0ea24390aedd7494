"""The OCPP transaction outbox on the real MicroPython binary, on littlefs over the power-cuttable flash model
(outbox_flash_mp.py): a cut at every erase/program of a scenario with online and offline sessions and a
compaction loses no recorded message, duplicates none outside the one stated window, and keeps the order."""
import pytest

from test_config_flash import run_mp

pytestmark = pytest.mark.mp


def test_power_cut_at_every_flash_operation_of_the_outbox():
    rc, out, results = run_mp("import outbox_flash_mp as f\nf.report(f.power_cut())\n", timeout=300)
    assert rc == 0, out
    r = results[0]
    assert r["failures"] == [], r["failures"][:10]
    assert r["compactions"] == 1 and r["ops"] >= 15 and r["cut_points"] == r["ops"] + 1
    # the window exists and is the only source of a second delivery: a cut while an answer is being recorded
    assert r["resent_in_window"] >= 1
