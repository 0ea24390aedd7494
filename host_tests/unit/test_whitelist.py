"""The whitelist's logic on a host folder (sessions/whitelist.py); flash power cuts and the MQTT path are in
integration/test_whitelist_flash.py and test_authorization_mp.py."""
import pytest

from loadpilot.log import Log
from loadpilot.sessions.whitelist import Whitelist, WhitelistError


def wl(path):
    return Whitelist(str(path), Log(size=16, console_level=100))


def test_changes_survive_a_reload_and_the_log_is_compacted(tmp_path):
    w = wl(tmp_path)
    for i in range(200):
        w.add("%08X" % i)
    for i in range(190):
        w.delete("%08X" % i)
    assert len(w) == 10 and w.log_entries < 2 * 10 + 64 + 2  # compacted along the way
    assert [wl(tmp_path).get(i) for i in range(10)] == ["%08X" % i for i in range(190, 200)]


def test_a_damaged_tail_ends_the_log_and_the_next_change_rewrites_it(tmp_path):
    w = wl(tmp_path)
    w.add("07A47731")
    w.add("11223344")
    with open(str(tmp_path / "whitelist.log"), "ab") as f:
        f.write(b"+\x01\x02")  # a torn entry
    w = wl(tmp_path)
    assert w.damaged and len(w) == 2
    w.add("55667788")
    assert not w.damaged and len(wl(tmp_path)) == 3


def test_a_change_during_an_import_cancels_it(tmp_path):
    w = wl(tmp_path)
    assert w.import_part(b"id\n07A47731\n", 1, False) is None
    w.add("11223344")  # the import's copy no longer matches the list
    with pytest.raises(WhitelistError) as e:
        w.import_part(b"55667788\n", 2, True)
    assert "start again with part 1" in str(e.value)
    assert [w.get(i) for i in range(len(w))] == ["11223344"]


def test_full_list_refuses_more(tmp_path):
    w = Whitelist(str(tmp_path), Log(size=16, console_level=100), max_entries=3)
    for i in range(3):
        w.add("%08X" % i)
    with pytest.raises(WhitelistError):
        w.add("0A0B0C0D")
    with pytest.raises(WhitelistError) as e:
        w.import_part(b"0A0B0C0D\n")
    assert "line 1" in str(e.value) and len(w) == 3
