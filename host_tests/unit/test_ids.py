"""The ID rule of the seed's WHITELISTS page and the one normal form (sessions/ids.py): every spelling of one
card is one ID, everything else is refused with the rule, and the whitelist's record round-trips."""
import pytest

from loadpilot.sessions import ids


@pytest.mark.parametrize("text, norm", [
    ("07a47731", "07A47731"),
    ("07:A4:77:31", "07A47731"),
    (" 07-a4-77-31 ", "07A47731"),
    ("07 A4 77 31", "07A47731"),
    ("04a1b2c3d4e5f6", "04A1B2C3D4E5F6"),            # 7 bytes
    ("04A1B2C3D4E5F6_1", "04A1B2C3D4E5F6_1"),
    ("00112233445566778899_2", "00112233445566778899_2"),  # 10 bytes
    ("aa:bb:cc:dd:ee:ff", "AABBCCDDEEFF"),            # a MAC address
    ("input_auth", "INPUT_AUTH"),
    ("12345678", "12345678"),                         # an 8-digit PIN
])
def test_valid_ids_have_one_normal_form(text, norm):
    assert ids.normal(text) == norm
    assert ids.normal(norm) == norm
    assert ids.from_record(ids.record(norm)) == norm


@pytest.mark.parametrize("text", [
    "", "07A4773", "07A477311", "0-7A47731", "07:A4:77:31:", ":07A47731", "AABBCCDDEEFF_1", "07A47731_3",
    "07A47731_", "1234", "xyz", "07A4773G", "INPUT_AUTH_1", "0x07A47731", "07A47731" * 9, None, 42,
    "0011223344556677889900",  # 11 bytes
])
def test_everything_else_is_refused_with_the_rule(text):
    with pytest.raises(ids.IdError) as e:
        ids.normal(text)
    assert "4, 7 or 10 byte hex number with optional postfix _1 or _2" in str(e.value)
    assert "INPUT_AUTH" in str(e.value) and "MAC address" in str(e.value)


def test_records_sort_like_the_ids():
    norms = ["07A47731", "07A47731_1", "07A4773100AABB", "AABBCCDDEEFF", "FFFFFFFF", "INPUT_AUTH"]
    assert sorted(norms, key=ids.record) == norms
    assert all(len(ids.record(n)) == ids.RECORD for n in norms)


def test_free_charging_tag_takes_an_id_or_an_ocpp_token():
    assert ids.tag("freecharging") == "FREECHARGING"
    assert ids.tag("07:a4:77:31") == "07A47731"
    for bad in ("", "x" * 21, "two words", "a;b"):
        with pytest.raises(ids.IdError):
            ids.tag(bad)
