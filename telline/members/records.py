"""A group's members as its coordinators see them: add, edit, deactivate and reactivate, list and
read one, clear a number's flag, read the consent history.

Who may see what comes from telline.accounts.access: a member of a group the user does not have is
answered as if there were none (access.NotFound). What comes back is a frozen record, never a row, and
numbers are masked unless the caller asks for them in full (that is audited). Each change writes its
audit row; the caller commits both together (nothing here commits).

A member is a phone number (members.phone is unique): adding a number already known to telline gives
that member a membership of this group. Their name, language and zone are theirs, not the group's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone, zones
from telline.accounts import access, audit
from telline.models import (
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Group,
    Member,
    Membership,
    MembershipStatus,
    NumberStatus,
    User,
)
from telline.sms import consent
from telline.texts import SAY_LANGUAGE

MAX_NAME = 80
MAX_CONSENT_HOW = 150
MAX_PAGE = 500


class InvalidMember(ValueError):
    """A field of a member is wrong, or the change cannot be made; str() is one sentence saying why."""


@dataclasses.dataclass(frozen=True)
class MemberRecord:
    id: int
    group_id: int
    display_name: str
    number: str  # E.164, or masked ("+44•••••0123") unless asked for in full
    language: str | None  # None: the group's
    timezone: str | None  # None: the group's
    status: MembershipStatus  # pending (waits for their YES), active, left (deactivated)
    consent: ConsentAction | None  # the number's latest consent; None: never asked
    number_status: NumberStatus  # ok, or why texts to it fail (invalid, landline, unreachable)
    number_status_detail: str
    joined_at: dt.datetime
    created_at: dt.datetime

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclasses.dataclass(frozen=True)
class MemberPage:
    members: tuple[MemberRecord, ...]
    next_after: int | None  # pass as after_id for the next page; None: this was the last


@dataclasses.dataclass(frozen=True)
class GivenConsent:
    """How and when a member said yes to texts, as a coordinator records it (a form, a call)."""

    how: str  # "paper form at the meeting", "said yes on the phone to Sam"
    on: dt.date


@dataclasses.dataclass(frozen=True)
class ConsentRecord:
    """One ledger row as a coordinator reads it."""

    id: int
    at: dt.datetime  # when it was recorded
    given_on: dt.date | None  # when it was given, if the record says (imports)
    action: ConsentAction
    channel: str
    source: ConsentSource
    detail: str
    group_id: int | None
    # True: recorded for another group (a coordinator of this one sees that it happened, since consent
    # covers all of telline, but not which group nor its detail).
    elsewhere: bool


ConsentOutcome = Literal["recorded", "opted_out", "none"]


# --- checks shared with the CSV import -------------------------------------------------------------
def checked_number(text: str, group: Group) -> str:
    try:
        return phone.to_e164(text, group.default_region)
    except phone.InvalidPhoneNumber as exc:
        raise InvalidMember(str(exc)) from None


def checked_name(text: str | None) -> str:
    name = " ".join((text or "").split())  # no newlines or tabs in a name shown on a roster
    if len(name) > MAX_NAME:
        raise InvalidMember(f"A name has at most {MAX_NAME} characters; this one has {len(name)}.")
    return name


def checked_language(text: str | None) -> str | None:
    """A language telline speaks ("fr", "FR", "fr-FR" → "fr"); empty: the group's."""
    raw = (text or "").strip()
    if not raw:
        return None
    tag = raw.replace("_", "-").split("-")[0].lower()
    if tag not in SAY_LANGUAGE:
        raise InvalidMember(f"Language “{raw}” is not available; choose one of {', '.join(SAY_LANGUAGE)}, "
                            "or leave it empty for the group's.")
    return tag


def checked_zone(text: str | None) -> str | None:
    raw = (text or "").strip()
    if not raw:
        return None
    try:
        zones.zone(raw)
    except zones.UnknownZone as exc:
        raise InvalidMember(f"{exc}, or leave it empty for the group's.") from None
    return raw


def checked_consent(given: GivenConsent, group: Group, now: dt.datetime | None = None) -> GivenConsent:
    how = " ".join(given.how.split())
    if not how:
        raise InvalidMember("Say how consent was given (for example “paper form”).")
    if len(how) > MAX_CONSENT_HOW:
        raise InvalidMember(f"How consent was given takes at most {MAX_CONSENT_HOW} characters.")
    today = (now or dt.datetime.now(dt.UTC)).astimezone(zones.zone(group.timezone)).date()
    if given.on > today:
        raise InvalidMember(f"The consent date {given.on.isoformat()} is in the future.")
    return GivenConsent(how, given.on)


def record_consent(session: Session, number: str, group_id: int, given: GivenConsent | None,
                   source: ConsentSource) -> ConsentOutcome:
    """Append the opt-in a coordinator recorded, unless the number opted out (may_record_opt_in)."""
    if given is None:
        return "none"
    if not may_record_opt_in(consent.current(session, number)):
        return "opted_out"
    consent.record(session, number, consent.OPT_IN, source, group_id=group_id, detail=given.how,
                   given_on=given.on)
    return "recorded"


# --- reading ---------------------------------------------------------------------------------------
def _record(row: sa.Row[Any], full: bool) -> MemberRecord:
    """A record from one row of _listed: columns, not ORM objects (a page of 500 members built from
    entities spent half its time making them)."""
    return MemberRecord(
        id=row.id, group_id=row.group_id, display_name=row.display_name,
        number=row.phone if full else phone.mask(row.phone), language=row.language, timezone=row.timezone,
        status=row.status, consent=row.consent, number_status=row.sms_status,
        number_status_detail=row.sms_status_detail, joined_at=row.joined_at, created_at=row.created_at)


def _listed(group_id: int) -> sa.Select[*tuple[Any, ...]]:
    return (sa.select(Member.id, Membership.group_id, Member.display_name, Member.phone, Member.language,
                      Member.timezone, Membership.status, consent.latest_action(Member.phone).label("consent"),
                      Member.sms_status, Member.sms_status_detail, Membership.joined_at, Member.created_at)
            .join(Membership, (Membership.member_id == Member.id) & (Membership.group_id == group_id)))


def _rows(group_id: int) -> sa.Select[Member, Membership, ConsentAction | None]:
    return (sa.select(Member, Membership, consent.latest_action(Member.phone))
            .join(Membership, (Membership.member_id == Member.id) & (Membership.group_id == group_id)))


def _one(session: Session, group_id: int, member_id: int) -> tuple[Member, Membership, ConsentAction | None]:
    row = session.execute(_rows(group_id).where(Member.id == member_id)).one_or_none()
    if row is None:
        raise access.NotFound(f"There is no member {member_id} in this group.")
    member, membership, latest = row
    return member, membership, latest


def get_member(session: Session, user: User, group_id: int, member_id: int, *,
               full_number: bool = False) -> MemberRecord:
    access.require_group(session, user, group_id)
    row = session.execute(_listed(group_id).where(Member.id == member_id)).one_or_none()
    if row is None:
        raise access.NotFound(f"There is no member {member_id} in this group.")
    if full_number:
        audit.record(session, user, "members.view_numbers", group_id=group_id, target_type="member",
                     target_id=member_id)
    return _record(row, full_number)


def list_members(session: Session, user: User, group_id: int, *, after_id: int | None = None, limit: int = 50,
                 active: bool | None = None, opted_in: bool | None = None, search: str | None = None,
                 full_numbers: bool = False) -> MemberPage:
    """A page of the group's members in id order (keyset: pass the page's next_after as after_id).
    active / opted_in: True or False to keep only those, None for all; search: part of the name."""
    access.require_group(session, user, group_id)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidMember(f"A page holds 1 to {MAX_PAGE} members.")
    query = _listed(group_id).order_by(Member.id).limit(limit + 1)
    if after_id is not None:
        query = query.where(Member.id > after_id)
    if active is not None:
        query = query.where((Membership.status == "active") if active else (Membership.status != "active"))
    if opted_in is not None:
        is_in = sa.func.coalesce(consent.latest_action(Member.phone), "") == consent.OPT_IN
        query = query.where(is_in if opted_in else sa.not_(is_in))
    words = (search or "").split()
    for word in words:  # every word somewhere in the name, in any case
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Member.display_name.ilike(f"%{escaped}%", escape="\\"))
    rows = session.execute(query).all()
    page = tuple(_record(row, full_numbers) for row in rows[:limit])
    if full_numbers and page:
        audit.record(session, user, "members.view_numbers", group_id=group_id,
                     detail={"count": len(page)})
    return MemberPage(page, page[-1].id if len(rows) > limit else None)


def consent_history(session: Session, user: User, group_id: int, member_id: int) -> list[ConsentRecord]:
    """Every ledger event of the member's number, oldest first. Consent covers all of telline, so
    events recorded for other groups are shown too (they decide whether this group may text), but to
    a coordinator without those groups, without the group or its detail."""
    access.require_group(session, user, group_id)
    member, _membership, _latest = _one(session, group_id, member_id)
    visible = set(access.group_ids(session, user))
    events = session.scalars(sa.select(ConsentEvent).where(ConsentEvent.phone == member.phone)
                             .order_by(ConsentEvent.id))
    out = []
    for e in events:
        hidden = e.group_id is not None and e.group_id not in visible
        out.append(ConsentRecord(id=e.id, at=e.created_at, given_on=e.given_on, action=e.action, channel=e.channel,
                                 source=e.source, detail="" if hidden else e.detail,
                                 group_id=None if hidden else e.group_id, elsewhere=hidden))
    return out


# --- changing --------------------------------------------------------------------------------------
def add_member(session: Session, user: User, group_id: int, *, number: str, display_name: str = "",
               language: str | None = None, timezone: str | None = None,
               consent_given: GivenConsent | None = None) -> tuple[MemberRecord, ConsentOutcome]:
    """Add a number to the group (the group's country reads a number without +code). Consent is
    recorded only when the coordinator says how and when it was given, and never over an opt-out."""
    group = access.require_group(session, user, group_id)
    e164 = checked_number(number, group)
    name, lang, zone = checked_name(display_name), checked_language(language), checked_zone(timezone)
    given = checked_consent(consent_given, group) if consent_given else None
    member = session.scalar(sa.select(Member).where(Member.phone == e164))
    if member is not None:
        refuse_existing(session, member.id, group.id)
    member, _fields = _join(session, group.id, e164, member, name=name, language=lang, timezone=zone)
    outcome = record_consent(session, e164, group.id, given, "web")
    session.flush()
    audit.record(session, user, "members.add", group_id=group.id, target_type="member", target_id=member.id,
                 detail={"fields": [f for f, v in (("display_name", name), ("language", lang),
                                                   ("timezone", zone)) if v]})
    return get_member(session, user, group.id, member.id), outcome


def refuse_existing(session: Session, member_id: int, group_id: int) -> None:
    status = session.scalar(sa.select(Membership.status).where(Membership.member_id == member_id,
                                                               Membership.group_id == group_id))
    reason = already_member(member_id, status)
    if reason:
        raise InvalidMember(reason)


def already_member(member_id: int, status: MembershipStatus | None) -> str | None:
    """Why a number cannot be added to a group it has this membership of (None: it can)."""
    if status == "left":
        return (f"This number was a member of the group (member {member_id}), deactivated: "
                "reactivate them instead.")
    if status == "pending":
        return f"This number is already a member of the group (member {member_id}), waiting to confirm by text."
    if status is not None:
        return f"This number is already a member of the group (member {member_id})."
    return None


def may_record_opt_in(latest: ConsentAction | None) -> bool:
    """A coordinator's record of consent never stands over an opt-out: a STOP stands until the member
    themselves opts back in (START, YES, JOIN)."""
    return latest != consent.OPT_OUT


def apply_fields(member: Member, *, display_name: str, language: str | None, timezone: str | None) -> list[str]:
    """Write the given (non-empty) fields over a member telline knew already; returns those changed."""
    changed = []
    for field, value in (("display_name", display_name), ("language", language), ("timezone", timezone)):
        if value and getattr(member, field) != value:
            setattr(member, field, value)
            changed.append(field)
    return changed


def _join(session: Session, group_id: int, e164: str, member: Member | None, *, name: str,
          language: str | None, timezone: str | None) -> tuple[Member, list[str]]:
    """The member for the number (made if new; given fields written over a known one's), in the group."""
    changed = []
    if member is None:
        member = Member(phone=e164, display_name=name, language=language, timezone=timezone)
        session.add(member)
        session.flush()
    else:
        changed = apply_fields(member, display_name=name, language=language, timezone=timezone)
    session.add(Membership(member_id=member.id, group_id=group_id, status="active"))
    return member, changed


def update_member(session: Session, user: User, group_id: int, member_id: int, *, display_name: str | None = None,
                  language: str | None = None, timezone: str | None = None,
                  number: str | None = None) -> tuple[MemberRecord, list[str]]:
    """Change the given fields (None leaves one as it is; "" sets language or zone back to the
    group's). A new number starts with no consent and no flag. Returns the record and the fields changed."""
    group = access.require_group(session, user, group_id)
    member, _membership, _latest = _one(session, group_id, member_id)
    wanted: dict[str, object] = {}
    if display_name is not None:
        wanted["display_name"] = checked_name(display_name)
    if language is not None:
        wanted["language"] = checked_language(language)
    if timezone is not None:
        wanted["timezone"] = checked_zone(timezone)
    if number is not None:
        e164 = checked_number(number, group)
        if e164 != member.phone:
            other = session.scalar(sa.select(Member.id).where(Member.phone == e164))
            if other is not None:
                raise InvalidMember("Another member already has this number.")
            wanted.update(phone=e164, sms_status="ok", sms_status_detail="")
    changed = [field for field, value in wanted.items() if getattr(member, field) != value]
    for field in changed:
        setattr(member, field, wanted[field])
    if changed:
        session.flush()
        audit.record(session, user, "members.update", group_id=group_id, target_type="member",
                     target_id=member_id, detail={"fields": changed})
    return get_member(session, user, group_id, member_id), changed


def deactivate(session: Session, user: User, group_id: int, member_id: int) -> MemberRecord:
    """The member leaves the group: no reminders, notices or broadcasts from it, NEXT answers as to a
    stranger. Their consent and their other groups are untouched."""
    return _set_status(session, user, group_id, member_id, "left")


def reactivate(session: Session, user: User, group_id: int, member_id: int) -> MemberRecord:
    return _set_status(session, user, group_id, member_id, "active")


def _set_status(session: Session, user: User, group_id: int, member_id: int,
                status: MembershipStatus) -> MemberRecord:
    access.require_group(session, user, group_id)
    _member, membership, _latest = _one(session, group_id, member_id)
    if status == "active" and membership.status == "pending":
        raise InvalidMember("This member has not confirmed by text yet: they become active when they reply YES.")
    if membership.status != status:
        membership.status = status
        session.flush()
        audit.record(session, user, "members.deactivate" if status == "left" else "members.reactivate",
                     group_id=group_id, target_type="member", target_id=member_id, detail={"status": status})
    return get_member(session, user, group_id, member_id)


def reset_number_flag(session: Session, user: User, group_id: int, member_id: int) -> MemberRecord:
    """Clear what a send error said of the number (invalid and landline stop every text to it,
    models.UNTEXTABLE; unreachable): texts go to it again — say, once the member confirmed it is a
    mobile. A new error sets the flag again."""
    access.require_group(session, user, group_id)
    member, _membership, _latest = _one(session, group_id, member_id)
    if member.sms_status == "ok":
        raise InvalidMember("This member's number has no flag to clear.")
    member.sms_status, member.sms_status_detail = "ok", ""
    session.flush()
    audit.record(session, user, "members.reset_flag", group_id=group_id, target_type="member", target_id=member_id,
                 detail={"fields": ["sms_status"]})
    return get_member(session, user, group_id, member_id)
