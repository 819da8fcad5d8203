"""Every phone number enters telline here: parsed by `phonenumbers`, kept as E.164.

Two doors:
- `to_e164(text, region)` for numbers a person typed (a coordinator's form, a CSV,
  the CLI): strict, and its errors are sentences a coordinator understands.
- `from_twilio(value)` for Twilio's From/To fields: never raises; anonymous,
  blocked, `client:` and garbage senders come back as None.
And one way out: `mask()` for anything written to a log.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

# What carriers put in From when the caller hid their number (Twilio documents
# these for anonymous, restricted, blocked and unavailable callers).
ANONYMOUS_VALUES = frozenset({
    "", "anonymous", "restricted", "private", "unknown", "unavailable", "blocked",
    "+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253",
})


class InvalidPhoneNumber(ValueError):
    """The text is not a number telline can call or text; str() says why, plainly."""


def to_e164(text: str, region: str | None = "US") -> str:
    """Parse a number a person typed. `region` reads numbers without a country code."""
    raw = (text or "").strip()
    if not raw:
        raise InvalidPhoneNumber("Please enter a phone number.")
    try:
        number = phonenumbers.parse(raw, (region or "").upper() or None)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            raise InvalidPhoneNumber(
                f"“{raw}” has no country code we recognise: start it with + and the country code "
                f"(for example +44 for the UK), or set the group's country.") from None
        if exc.error_type in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
            raise InvalidPhoneNumber(f"“{raw}” is too short to be a phone number.") from None
        if exc.error_type == NumberParseException.TOO_LONG:
            raise InvalidPhoneNumber(f"“{raw}” is too long to be a phone number.") from None
        raise InvalidPhoneNumber(f"“{raw}” is not a phone number.") from None
    if number.extension:
        raise InvalidPhoneNumber(
            f"“{raw}” has an extension; telline cannot text or dial an extension. "
            "Please give a direct number.")
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == phonenumbers.ValidationResult.TOO_SHORT:
        raise InvalidPhoneNumber(f"“{raw}” is too short for {_country(number)}.")
    if reason == phonenumbers.ValidationResult.TOO_LONG:
        raise InvalidPhoneNumber(f"“{raw}” is too long for {_country(number)}.")
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise InvalidPhoneNumber(f"“{raw}” has the wrong number of digits for {_country(number)}.")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(f"“{raw}” is not a number in use in {_country(number)}; "
                                 "please check the digits.")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=1024)  # every webhook names one of a few lines as To: parsed once
def from_twilio(value: str | None) -> str | None:
    """E.164 for a real number in a webhook field, None for anything we cannot call back."""
    raw = (value or "").strip()
    if raw.lower() in ANONYMOUS_VALUES or ":" in raw:  # client:alice, sip:…
        return None
    if not raw.startswith("+"):
        # Twilio sends E.164; anything else is a short code or a test value.
        return None
    try:
        return to_e164(raw, None)
    except InvalidPhoneNumber:
        return None


def is_anonymous(value: str | None) -> bool:
    return (value or "").strip().lower() in ANONYMOUS_VALUES


def for_display(e164: str) -> str:
    """A line's number as a member dials it: '+44 20 7946 0000'."""
    return phonenumbers.format_number(phonenumbers.parse(e164, None), PhoneNumberFormat.INTERNATIONAL)


@functools.lru_cache(maxsize=65536)
def mask(e164: str | None) -> str:
    """'+33612345678' → '+33•••••5678': enough to tell two callers apart in a log. Cached: a page of
    500 members or a busy log parses the same numbers again and again (phonenumbers.parse is ~50 µs)."""
    if not e164:
        return "anonymous"
    try:
        number = phonenumbers.parse(e164, None)
        cc = f"+{number.country_code}"
        national = str(number.national_number)
    except NumberParseException:
        cc, national = "", re.sub(r"\D", "", e164)
    if len(national) <= 4:
        return cc + "•" * len(national)
    return cc + "•" * (len(national) - 4) + national[-4:]


def mask_tail(e164: str | None) -> str:
    """'•••5678': how an unknown caller is shown to a host."""
    if not e164:
        return "•••"
    return "•••" + re.sub(r"\D", "", e164)[-4:]


# A "+" as a log line may carry it: itself, URL-encoded once or more (%2B, %252B: requests puts the
# query of a failed request in its exception), a JSON or Python unicode escape (\u002b, behind any
# number of backslashes), an HTML entity.
_PLUS = r"(?:\+|%(?:25)*2[bB]|\\+u002[bB]|&#(?:43|[xX]2[bB]);)"
# Where a number is written without its "+": after a field that holds one (Twilio's To/From/Caller/
# Called, ours), or a scheme. A field name must stand alone: "SequenceNumber=…" is a count.
_NUMBER_FIELD = (r"(?<![\w])(?i:to|from|from_|caller|called|forwarded_?from|phone|(?:from|to|caller)_number|msisdn)"
                 r"[\"']?\s*[=:]\s*[\"']?\s?")
_SCHEME = r"(?i:whatsapp|tel|sms):"
# 7 to 15 digits (E.164's most; no country code starts with 0, as a "+0000" UTC offset does), with what
# people and libraries put between them; never the start of a longer run of digits, so a count written
# after a number stays a count.
_DIGITS = r"[1-9](?:(?:[ \-.()]{1,2}|%20)?\d){6,14}(?!\d)"
_NUMBER_IN_TEXT = re.compile(rf"(?P<lead>{_PLUS}|(?:{_NUMBER_FIELD}|{_SCHEME}){_PLUS}?)(?P<digits>{_DIGITS})")


def mask_numbers_in(text: str) -> str:
    """Mask every phone number in a log line, however it was written or encoded, keeping what came
    before its digits ("To=%2B", "whatsapp:+"). SIDs, ids, timestamps and counts have no "+" or
    number field before them and are left alone."""
    return _NUMBER_IN_TEXT.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group("digits").replace("%20", ""))
    return match.group("lead") + mask("+" + digits).removeprefix("+")


def _country(number: phonenumbers.PhoneNumber) -> str:
    region = phonenumbers.region_code_for_number(number)
    return f"country code +{number.country_code}" + (f" ({region})" if region else "")
