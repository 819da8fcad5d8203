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


# --- every encoding a number takes in a log line -----------------------------------------------------
@pytest.mark.parametrize("line,masked", [
    ("To=%2B33612345678&From=%2B15005550006&PageSize=50", "To=%2B33•••••5678&From=%2B1••••••0006&PageSize=50"),
    ("url: /Messages.json?To=%252B447911123456", "url: /Messages.json?To=%252B44••••••3456"),
    ('{"to": "\\u002b447911123456"}', '{"to": "\\u002b44••••••3456"}'),
    ('"params": "{\\\\u002B447911123456}"', '"params": "{\\\\u002B44••••••3456}"'),
    ("To=447911123456&Body=hi", "To=44••••••3456&Body=hi"),
    ("From= 447911123456", "From= 44••••••3456"),  # a form-encoded "+" read back as a space
    ("{'to': '447911123456', 'from_': '+15005550006'}", "{'to': '44••••••3456', 'from_': '+1••••••0006'}"),
    ('"phone": "33612345678"', '"phone": "33•••••5678"'),
    ("whatsapp:+447911123456 and tel:447911123456", "whatsapp:+44••••••3456 and tel:44••••••3456"),
    ("To=%2B44%207911%20123456", "To=%2B44••••••3456"),
    ("call +44 (0)7911-123.456 now", "call +44••••••3456 now"),
    ("&#43;447911123456", "&#43;44••••••3456"),
])
def test_numbers_are_masked_in_every_encoding(line, masked):
    assert phone.mask_numbers_in(line) == masked


@pytest.mark.parametrize("line", [
    "MessageSid=SM12345678901234567890123456789012 CallSid=CA00000000000000000000000000000001",
    "/Accounts/AC11111111111111111111111111111111/Conferences/CF0123456789abcdef0123456789abcdef.json",
    '"message_id": 4815162342, "member_id": 12345678, "SequenceNumber": 2147483648',
    "id=4815162342&count=12345678&NumMedia=10",
    "2026-12-02T02:22:10.123456+00:00 took 0:00:00.032094s at 1733105530",
    "Thu, 26 Nov 2026 19:00:00 +0000 1733105530",
    "job 203b68a2-ba88-49a9-bae0-9751a133154d sent 1234567 texts, ref 12345",
])
def test_sids_ids_timestamps_and_counts_are_left_alone(line):
    assert phone.mask_numbers_in(line) == line


def test_a_count_after_a_number_is_not_taken_for_its_digits():
    assert phone.mask_numbers_in("+33612345678 12345 texts") == "+33•••••5678 12345 texts"
