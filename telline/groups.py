"""Creating groups and attaching Twilio numbers (lines) to them.

Each function takes the caller's session and flushes; the caller commits (the CLI after it, the
JSON API with its audit row in the same commit)."""

from __future__ import annotations

import datetime as dt
import re

import phonenumbers
import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone, zones
from telline.models import RATE_UNITS, Group, Line, Membership
from telline.texts import SAY_LANGUAGE

# How long a text's body may be kept (telline.members.retention): a day to ten years.
RETENTION_DAYS = range(1, 3651)


class InvalidGroup(ValueError):
    pass


def is_active_member(session: Session, member_id: int | None, group_id: int) -> bool:
    return member_id is not None and session.scalar(sa.select(Membership.id).where(
        Membership.member_id == member_id, Membership.group_id == group_id,
        Membership.status == "active")) is not None


def _checked_basics(*, name: str, language: str, timezone: str, region: str) -> tuple[str, str, str, str]:
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidGroup("A group needs a name of 1 to 120 characters.")
    if language not in SAY_LANGUAGE:
        raise InvalidGroup(f"Language {language!r} is not available; choose one of {', '.join(SAY_LANGUAGE)}.")
    try:
        zones.zone(timezone)
    except zones.UnknownZone as exc:
        raise InvalidGroup(str(exc)) from None
    region = region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidGroup(f"{region!r} is not a country code phonenumbers knows (use e.g. GB, FR, US).")
    return name, language, timezone, region


def create_group(session: Session, *, name: str, language: str = "en", timezone: str = "UTC",
                 region: str = "US") -> Group:
    name, language, timezone, region = _checked_basics(name=name, language=language, timezone=timezone,
                                                       region=region)
    group = Group(name=name, language=language, timezone=timezone, default_region=region)
    session.add(group)
    session.flush()
    return group


def add_line(session: Session, group_id: int, number: str, label: str = "") -> Line:
    group = session.get(Group, group_id)
    if group is None:
        raise InvalidGroup(f"There is no group {group_id}.")
    try:
        e164 = phone.to_e164(number, group.default_region)
    except phone.InvalidPhoneNumber as exc:
        raise InvalidGroup(str(exc)) from None
    if session.scalar(sa.select(Line).where(Line.phone_number == e164)):
        raise InvalidGroup(f"{e164} already answers for a group.")
    label = label.strip()
    if len(label) > 80:
        raise InvalidGroup("A line's label has at most 80 characters.")
    line = Line(group_id=group.id, phone_number=e164, label=label)
    session.add(line)
    session.flush()
    return line


def configure_group(session: Session, group_id: int, *, name: str | None = None, language: str | None = None,
                    timezone: str | None = None, region: str | None = None, text_code: str | None = None,
                    join_needs_confirmation: bool | None = None, quiet_hours: str | None = None,
                    crisis_resource: str | None = None, coordinator_contact: str | None = None,
                    retention_days: int | None = None) -> Group:
    """Change a group's settings (and how long its texts' bodies are kept); None leaves a setting as
    it is. All are checked before any is applied, so a refusal changes nothing."""
    if retention_days is not None and retention_days not in RETENTION_DAYS:
        raise InvalidGroup(f"Message bodies are kept {RETENTION_DAYS.start} to {RETENTION_DAYS.stop - 1} days, "
                           f"not {retention_days}.")
    group = session.get(Group, group_id)
    if group is None:
        raise InvalidGroup(f"There is no group {group_id}.")
    basics = _checked_basics(name=group.name if name is None else name,
                             language=group.language if language is None else language,
                             timezone=group.timezone if timezone is None else timezone,
                             region=group.default_region if region is None else region)
    quiet = parse_quiet_hours(quiet_hours) if quiet_hours is not None else None
    code = None
    if text_code is not None:
        code = re.sub(r"[\s-]", "", text_code).upper()
        if not re.fullmatch(r"[A-Z0-9]{4,12}", code):
            raise InvalidGroup("A text code has 4 to 12 letters and digits, e.g. CARE42.")
        if session.scalar(sa.select(Group.id).where(Group.text_code == code, Group.id != group.id)):
            raise InvalidGroup(f"Another group already uses the code {code}.")
    group.name, group.language, group.timezone, group.default_region = basics
    if code is not None:
        group.text_code = code
    if join_needs_confirmation is not None:
        group.join_needs_confirmation = join_needs_confirmation
    if quiet is not None:
        group.quiet_start, group.quiet_end = quiet
    if crisis_resource is not None:
        group.crisis_resource = crisis_resource.strip()[:300]
    if coordinator_contact is not None:
        group.coordinator_contact = coordinator_contact.strip()[:200]
    if retention_days is not None:
        group.message_retention_days = retention_days
    session.flush()
    return group


def parse_quiet_hours(text: str) -> tuple[dt.time, dt.time]:
    """'21:00-08:00' → (21:00, 08:00); 'none' → no quiet hours (start == end)."""
    if text.strip().lower() in ("none", "off", ""):
        return dt.time(0, 0), dt.time(0, 0)
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    try:
        if match is None:
            raise ValueError(text)
        start, end = (dt.time(int(match[1]), int(match[2])), dt.time(int(match[3]), int(match[4])))
    except ValueError:  # not that shape, or 25:00
        raise InvalidGroup("Quiet hours look like 21:00-08:00 (local time), or 'none'.") from None
    if start == end:  # all day or never? 'none' says never; a whole day without texts is no line at all
        raise InvalidGroup(f"Quiet hours that start and end at the same time ({text.strip()}) say nothing: "
                           "give an end such as 21:00-08:00, or 'none' for no quiet hours.")
    return start, end


def set_line_rate(session: Session, number: str, per_second: float, unit: str) -> Line:
    """A line's Twilio throughput: e.g. 1 segment/s for a long code, 100 for a short code."""
    line = session.scalar(sa.select(Line).where(Line.phone_number == any_e164(number)))
    if line is None:
        raise InvalidGroup(f"No line has the number {number}.")
    return configure_line(session, line, per_second=per_second, unit=unit)


def configure_line(session: Session, line: Line, *, per_second: float | None = None, unit: str | None = None,
                   label: str | None = None) -> Line:
    """Change a line's rate or label; None leaves one as it is, a refusal changes nothing."""
    per_second = line.sms_rate if per_second is None else per_second
    unit = line.sms_rate_unit if unit is None else unit
    if not 0.01 <= per_second <= 1000:
        raise InvalidGroup("A rate is between 0.01 and 1000 per second.")
    if unit not in RATE_UNITS:
        raise InvalidGroup("The unit is 'segments' or 'messages'.")
    if label is not None and len(label.strip()) > 80:
        raise InvalidGroup("A line's label has at most 80 characters.")
    line.sms_rate, line.sms_rate_unit = per_second, unit
    if label is not None:
        line.label = label.strip()
    session.flush()
    return line


def any_e164(number: str) -> str:
    try:
        return phone.to_e164(number, None)
    except phone.InvalidPhoneNumber as exc:
        raise InvalidGroup(str(exc)) from None
