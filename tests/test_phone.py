import logging

import pytest

from telline import phone


@pytest.mark.parametrize("text,region,expected", [
    ("+33 6 12 34 56 78", None, "+33612345678"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("(650) 253-0000", "US", "+16502530000"),
    ("07911 123456", "GB", "+447911123456"),
    ("  +44 7911 123456  ", "FR", "+447911123456"),  # a +code wins over the group's region
    ("0044 7911 123456", "FR", "+447911123456"),      # international prefix from France
])
def test_valid_numbers_become_e164(text, region, expected):
    assert phone.to_e164(text, region) == expected


@pytest.mark.parametrize("text,region,fragment", [
    ("", "US", "Please enter a phone number"),
    ("hello", "US", "is not a phone number"),
    ("123", "US", "too short"),
    ("06 12 34 56 78", None, "no country code"),
    ("+1 650 253 0000 ext. 123", None, "extension"),
    ("+33 1", None, "too short"),
    ("+1 123 456 7890", None, "not a number in use"),       # possible length, invalid area code
    ("+33 6 12 34 56 78 90 12", None, "too long for country code +33 (FR)"),
    ("1" * 40, "US", "too long"),
])
def test_invalid_numbers_get_a_sentence_a_coordinator_understands(text, region, fragment):
    with pytest.raises(phone.InvalidPhoneNumber) as err:
        phone.to_e164(text, region)
    assert fragment in str(err.value)


def test_possible_but_invalid_is_refused():
    import phonenumbers
    n = phonenumbers.parse("+1 123 456 7890")
    assert phonenumbers.is_possible_number(n) and not phonenumbers.is_valid_number(n)
    with pytest.raises(phone.InvalidPhoneNumber):
        phone.to_e164("+1 123 456 7890")


@pytest.mark.parametrize("value,expected", [
    ("+33612345678", "+33612345678"),
    ("anonymous", None), ("Anonymous", None), ("", None), (None, None),
    ("+266696687", None), ("+7378742833", None), ("+2562533", None), ("+8656696", None),
    ("client:alice", None), ("sip:bob@example.org", None),
    ("12345", None),             # a short code
    ("+1 123 456 7890", None),   # garbage from a test tool
])
def test_from_twilio_never_raises(value, expected):
    assert phone.from_twilio(value) == expected


def test_mask_keeps_country_code_and_last_four():
    assert phone.mask("+33612345678") == "+33•••••5678"
    assert phone.mask("+16502530000") == "+1••••••0000"
    assert phone.mask(None) == "anonymous"
    assert phone.mask_tail("+33612345678") == "•••5678"


def test_numbers_in_free_text_are_masked():
    text = "sent to +33612345678 and +1 650-253-0000, ref 12345"
    assert phone.mask_numbers_in(text) == "sent to +33•••••5678 and +1••••••0000, ref 12345"


def test_log_lines_never_carry_a_full_number(capsys):
    import io
    from telline import logs
    stream = io.StringIO()
    logs.configure("json", "INFO", stream=stream)
    logging.getLogger("telline.test").info("text from %s", "+33612345678", extra={"to": "+447911123456"})
    out = stream.getvalue()
    assert "+33612345678" not in out and "+447911123456" not in out
    assert "+33•••••5678" in out and "+44••••••3456" in out
