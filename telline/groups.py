"""Creating groups and attaching Twilio numbers (lines) to them."""

from __future__ import annotations

import zoneinfo

import phonenumbers
import sqlalchemy as sa

from telline import db, phone
from telline.models import Group, Line
from telline.texts import SAY_LANGUAGE


class InvalidGroup(ValueError):
    pass


def create_group(*, name: str, language: str = "en", timezone: str = "UTC", region: str = "US") -> Group:
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidGroup("A group needs a name of 1 to 120 characters.")
    if language not in SAY_LANGUAGE:
        raise InvalidGroup(f"Language {language!r} is not available; choose one of {', '.join(SAY_LANGUAGE)}.")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidGroup(f"{timezone!r} is not a time zone name; use one like Europe/Paris.") from None
    region = region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidGroup(f"{region!r} is not a country code phonenumbers knows (use e.g. GB, FR, US).")
    group = Group(name=name, language=language, timezone=timezone, default_region=region)
    session = db.session()
    session.add(group)
    session.commit()
    return group


def add_line(group_id: int, number: str) -> Line:
    session = db.session()
    group = session.get(Group, group_id)
    if group is None:
        raise InvalidGroup(f"There is no group {group_id}.")
    try:
        e164 = phone.to_e164(number, group.default_region)
    except phone.InvalidPhoneNumber as exc:
        raise InvalidGroup(str(exc)) from None
    if session.scalar(sa.select(Line).where(Line.phone_number == e164)):
        raise InvalidGroup(f"{e164} already answers for a group.")
    line = Line(group_id=group.id, phone_number=e164)
    session.add(line)
    session.commit()
    return line
