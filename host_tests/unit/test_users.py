"""The user store's logic on a host folder (sessions/users.py): checks and limits, one owner per ID, lookups for
charging, a damaged file, and get_users' stream. Power cuts and the commands' rights are in
integration/test_users_flash.py and test_users_mp.py."""
import json

import pytest

from loadpilot.log import Log
from loadpilot.sessions.users import Users, UsersError, UsersStream, parse


def store(path):
    return Users(str(path), Log(size=16, console_level=100))


def test_a_user_is_checked_field_by_field_and_ids_take_the_normal_form():
    u = parse({"id": " 12345678 ", "name": "Anna", "dev_ids": ["E3", "E2", "E2"], "priority": 4,
               "rfids": [{"id": "0a:1b:2c:3d"}]}, wallboxes=["E2", "E3"])
    assert u["id"] == "12345678" and u["dev_ids"] == ["E2", "E3"] and u["priority"] == 4
    assert u["rfids"] == [{"id": "0A1B2C3D", "name": "", "ac_auth": True, "ac_ovch": False, "used_phases": 0}]
    for bad, needle in (({"id": "1234567"}, "8, 14 or 20 digits"), ({"id": "1234567A"}, "8, 14 or 20 digits"),
                        ({"name": "x"}, "id: missing"), ({"id": "12345678", "dev_ids": ["E9"]}, "E9"),
                        ({"id": "12345678", "priority": 0}, "priority"), ({"id": "12345678", "priority": True}, "priority"),
                        ({"id": "12345678", "name": "a\nb"}, "control"), ({"id": "12345678", "name": "x" * 33}, "at most 32"),
                        ({"id": "12345678", "rfids": [{"id": "zz"}]}, "rfids[0].id"),
                        ({"id": "12345678", "rfids": [{"id": "12345678"}]}, "given twice"),
                        ({"id": "12345678", "rfids": [{"id": "0A1B2C3D", "used_phases": 8}]}, "used_phases"),
                        ({"id": "12345678", "charging_rules": [{"mode": 0}]}, "not supported"),
                        ({"id": "12345678", "budget": 5}, "budget: unknown key")):
        with pytest.raises(UsersError) as e:
            parse(bad, wallboxes=["E2", "E3"])
        assert needle in str(e.value), bad


def test_changes_survive_a_reload_and_every_id_has_one_owner(tmp_path):
    us = store(tmp_path)
    a = us.set({"id": "12345678", "name": "Anna", "dev_ids": ["E2"], "priority": 5,
                "rfids": [{"id": "0A1B2C3D"}, {"id": "0B0B0B0B", "ac_auth": False}]})
    b = us.set({"id": "87654321", "name": "Bob", "dev_ids": ["E3"]})
    with pytest.raises(UsersError, match="already in use"):
        us.set({"id": "11112222", "rfids": [{"id": "0a1b2c3d"}]})
    with pytest.raises(UsersError, match="already in use"):
        us.set({"id": "87654321", "rfids": [{"id": "12345678"}]}, b)  # Bob takes Anna's PIN as his card
    us.set({"id": "12345678", "name": "Anna B"}, a)  # a field left out keeps its value
    again = store(tmp_path)
    assert len(again) == 2 and again.boxes() == ("E2", "E3") and again.name(0) == "Anna B" and again.prio(0) == 5
    assert again.read(0)["rfids"][1] == {"id": "0B0B0B0B", "name": "", "ac_auth": False, "ac_ovch": False,
                                         "used_phases": 0}
    assert again.authorizes("E2", "12345678") == (0, True) and again.authorizes("E2", "0A1B2C3D") == (0, False)
    assert again.authorizes("E2", "0B0B0B0B") is None  # ac_auth off: no charging with this card
    assert again.authorizes("E3", "12345678") is None and again.authorizes("E2", "99999999") is None
    assert again.number("12345678") == 0 and again.number("0A1B2C3D") is None  # an RFID is no user ID
    again.delete(0)
    assert store(tmp_path).boxes() == ("E3",)
    again.delete(0)
    assert not list((tmp_path).iterdir())  # the last user removes the file


def test_new_ids_are_14_digits_and_unique(tmp_path):
    us = store(tmp_path)
    got = set(us.new_id() for _ in range(200))
    assert len(got) == 200 and all(len(x) == 14 and x.isdigit() and x[0] != "0" for x in got)


def test_a_damaged_file_is_kept_and_refuses_changes(tmp_path):
    (tmp_path / "users.jsonl").write_text('{"id": "12345678", "name": "A"}\n{"id": "8765\n')
    us = store(tmp_path)
    assert us.damaged and len(us) == 0
    with pytest.raises(UsersError, match="could not be read"):
        us.set({"id": "11112222"})
    assert (tmp_path / "users.jsonl").read_text().endswith('"8765\n')


def test_get_users_stream_is_the_documents_array_and_hides_ids_when_published(tmp_path):
    us = store(tmp_path)
    for i in range(3):
        us.set({"id": "1234567%d" % i, "name": "U%d" % i, "rfids": [{"id": "0A0B0C0%d" % i}]})
    for hide in (False, True):
        s = UsersStream(us, hide)
        body = b"".join(s.parts())
        assert len(body) == s.length()
        users = json.loads(body)
        assert [u["name"] for u in users] == ["U0", "U1", "U2"]
        assert [u["id"] for u in users] == (["***"] * 3 if hide else ["12345670", "12345671", "12345672"])
        assert users[1]["rfids"][0]["id"] == "0A0B0C01"
    (tmp_path / "none").mkdir()
    assert json.loads(b"".join(UsersStream(store(tmp_path / "none"), False).parts())) == []


def test_display_show_and_cards_with_functions(tmp_path):
    us = store(tmp_path)
    a = us.set({"id": "12345678", "name": "Anna", "dev_ids": ["E2"], "show": False,
                "rfids": [{"id": "0A1B2C3D"}, {"id": "0B0B0B0B", "ac_ovch": True}, {"id": "0C0C0C0C", "used_phases": 4}]})
    assert us.display(a) is True and us.show(a) is False
    assert us.has_functions("0A1B2C3D") is None and us.has_functions("12345678") is None
    assert us.has_functions("0B0B0B0B") == (a, 1) and us.has_functions("0C0C0C0C") == (a, 2)
    assert store(tmp_path).show(a) is False  # on flash, read back at boot
    # two phases: refused for a change (the manager knows 1 or 3), but a file that holds one still loads
    with pytest.raises(UsersError, match="1 phase or 3 phases"):
        us.set({"rfids": [{"id": "0A1B2C3D", "used_phases": 3}]}, a)
    line = json.loads((tmp_path / "users.jsonl").read_text())
    line["rfids"][0]["used_phases"] = 3
    del line["show"]  # a file written before "show" existed
    (tmp_path / "users.jsonl").write_text(json.dumps(line) + "\n")
    old = store(tmp_path)
    assert not old.damaged and old.show(0) is True and old.has_functions("0A1B2C3D") == (0, 0)
