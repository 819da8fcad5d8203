"""Twilio's form fields, read at the webhook boundary: values every column can hold, or a 400.

A request that passes the signature check can still carry what Twilio never sends: NUL
characters (PostgreSQL stores none in text), whole numbers past PostgreSQL's integer (2³¹) or
SQLite's (2⁶³), SIDs longer than the 34 characters their columns hold. The webhooks read every
field through these helpers, so the domain only sees values it can store on either database,
and a member's words are never dropped for a stray character.
"""

from __future__ import annotations

import re
from typing import Literal, NoReturn, TypeVar

from flask import abort, request

from telline import metrics

# Twilio's SIDs: a two-letter kind (SM, CA, CF…) and 32 hex digits.
SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
# PostgreSQL's integer: the type of every whole-number column (and of ids in URLs).
INT32_MAX = 2**31 - 1
# What a NUL becomes: Unicode's mark for "a character that could not be kept".
REPLACEMENT = "\ufffd"
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")

Route = Literal["sms", "sms_status", "voice", "conference", "dialout"]
_Choice = TypeVar("_Choice", bound=str)


def text(name: str, max_length: int | None = None) -> str | None:
    """A free-text field as sent, NULs replaced (None when absent); cut to max_length if given."""
    value = request.form.get(name)
    if value is None:
        return None
    value = value.replace("\x00", REPLACEMENT)
    return value if max_length is None else value[:max_length]


def sid(name: str, prefixes: tuple[str, ...], route: Route) -> str:
    """A SID the request must carry: 400 when it is missing or not one Twilio could have made."""
    value = optional_sid(name, prefixes, route)
    if value is None:
        refuse(route, f"{name} missing")
    return value


def optional_sid(name: str, prefixes: tuple[str, ...], route: Route) -> str | None:
    """None when absent or empty; 400 when present but malformed (it would not fit its column)."""
    value = request.form.get(name, "").strip()
    if not value:
        return None
    if not (SID.fullmatch(value) and value.startswith(prefixes)):
        refuse(route, f"{name} malformed")
    return value


def whole_number(name: str, *, low: int = 0, high: int | None = INT32_MAX) -> int | None:
    """A whole number in [low, high] (high None: no upper bound); None when absent, not a number,
    or out of range — the caller decides what that means for its field."""
    value = (request.form.get(name) or "").strip()
    if not _WHOLE_NUMBER.fullmatch(value):
        return None
    number = int(value)
    if number < low or (high is not None and number > high):
        return None
    return number


def choice(name: str, allowed: frozenset[_Choice], *, case: Literal["lower", "upper"] = "lower") -> _Choice | None:
    """The field when it is one of `allowed` (compared in `case`), else None."""
    value = (request.form.get(name) or "").strip()
    value = value.lower() if case == "lower" else value.upper()
    return next((known for known in allowed if known == value), None)


def refuse(route: Route, reason: str) -> NoReturn:
    metrics.WEBHOOKS.labels(route=route, outcome="bad_request").inc()
    abort(400, reason)
