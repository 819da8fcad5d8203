"""One number's data: everything telline holds about it (a subject access request), and its erasure.

Both are an admin's, both audited (ids and counts only). A number's data spans groups, so a
coordinator, who sees only theirs, can do neither.

Erasure removes the member row and its memberships, blanks the bodies of the number's texts (and the
number in them), its calls' numbers and recorded names; texts not yet sent to it are refused. Rows
stay, as counts and statuses other members' reports rely on, but say nothing of the person. The
consent ledger stays as it is (append-only: it is the proof, which the law asks for, that an opted-out
number is not texted), and gains an opt-out if the number's last word was not one, so that adding the
number again takes a fresh opt-in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import db, phone
from telline.accounts import access, audit
from telline.members.records import InvalidMember
from telline.models import (
    Call,
    ConferenceParticipant,
    ConsentEvent,
    Group,
    InboxItem,
    Line,
    Member,
    Membership,
    Message,
    User,
    utcnow,
)
from telline.sms import consent
from telline.sms.delivery import CLAIMABLE

UNSENT = (*CLAIMABLE, "submitting")  # texts telline has not handed to Twilio (or not known to have)
ERASED_DETAIL = "data erased at the member's request: no texts until they opt in again"


@dataclasses.dataclass(frozen=True)
class ErasureReport:
    member_id: int | None  # the member row removed; None: the number was no member
    messages: int  # texts blanked (of which some refused, if they were still to be sent)
    refused: int
    calls: int
    opted_out: bool  # an opt-out was added (the number's last consent was not one)


def _number(text: str, region: str | None) -> str:
    try:
        return phone.to_e164(text, region)
    except phone.InvalidPhoneNumber as exc:
        raise InvalidMember(str(exc)) from None


def _plain(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _rows(objects: Iterable[object], fields: tuple[str, ...]) -> list[dict[str, object]]:
    return [{f: _plain(getattr(o, f)) for f in fields} for o in objects]


def _message_filter(number: str, member_id: int | None) -> sa.ColumnElement[bool]:
    mine = sa.or_(Message.from_number == number, Message.to_number == number)
    return sa.or_(mine, Message.member_id == member_id) if member_id is not None else mine


def _call_filter(number: str, member_id: int | None) -> sa.ColumnElement[bool]:
    mine = sa.or_(Call.from_number == number, Call.to_number == number)
    return sa.or_(mine, Call.member_id == member_id) if member_id is not None else mine


def data_export(session: Session, user: User, number: str, *, region: str | None = None) -> dict[str, Any]:
    """Everything telline holds about the number, as JSON-able data: the member, their memberships,
    the consent ledger, texts, calls, meetings attended, inbox items. Times are UTC, ISO 8601."""
    access.require_admin(user)
    e164 = _number(number, region)
    member = session.scalar(sa.select(Member).where(Member.phone == e164))
    member_id = member.id if member else None
    memberships = session.execute(sa.select(Membership, Group.name).join(Group, Group.id == Membership.group_id)
                                  .where(Membership.member_id == member_id).order_by(Membership.id)).all()
    messages = list(session.scalars(sa.select(Message).where(_message_filter(e164, member_id)).order_by(Message.id)))
    calls = list(session.scalars(sa.select(Call).where(_call_filter(e164, member_id)).order_by(Call.id)))
    sids = [c.twilio_sid for c in calls]
    attended = session.scalars(sa.select(ConferenceParticipant).where(sa.or_(
        ConferenceParticipant.member_id == member_id, ConferenceParticipant.call_sid.in_(sids)))
        .order_by(ConferenceParticipant.id)).all() if member_id is not None or sids else []
    inbox = session.scalars(sa.select(InboxItem).where(InboxItem.message_id.in_([m.id for m in messages]))
                            .order_by(InboxItem.id)).all()
    line_ids = {m.line_id for m in messages} | {c.line_id for c in calls}
    lines = {line_id: number for line_id, number in
             session.execute(sa.select(Line.id, Line.phone_number).where(Line.id.in_(line_ids - {None})))}
    out: dict[str, Any] = {
        "number": e164,
        "exported_at": utcnow().isoformat(),
        "member": _rows([member], ("id", "display_name", "language", "timezone", "preferences", "sms_status",
                                   "sms_status_detail", "created_at"))[0] if member else None,
        "memberships": [{"group_id": m.group_id, "group": name, "status": m.status, "joined_at": _plain(m.joined_at)}
                        for m, name in memberships],
        "consent": _rows(session.scalars(sa.select(ConsentEvent).where(ConsentEvent.phone == e164)
                                         .order_by(ConsentEvent.id)),
                         ("id", "created_at", "given_on", "channel", "action", "source", "group_id", "detail")),
        "messages": [{**row, "line": lines.get(m.line_id) if m.line_id else None} for m, row in zip(messages, _rows(
            messages, ("id", "created_at", "direction", "from_number", "to_number", "body", "kind", "status",
                       "sent_at", "error_code", "error_message")), strict=True)],
        "calls": [{**row, "line": lines.get(c.line_id) if c.line_id else None} for c, row in zip(calls, _rows(
            calls, ("id", "started_at", "ended_at", "direction", "from_number", "to_number", "status",
                    "occurrence_id", "role", "name_recording_url")), strict=True)],
        "attendance": _rows(attended, ("occurrence_id", "role", "joined_at", "left_at", "muted", "hand_raised")),
        "inbox": _rows(inbox, ("message_id", "group_id", "status", "created_at")),
    }
    audit.record(session, user, "members.data_export", target_type="member", target_id=member_id,
                 detail={"rows": sum(len(out[k]) for k in ("memberships", "consent", "messages", "calls",
                                                           "attendance", "inbox"))})
    return out


def erase(session: Session, user: User, number: str, *, region: str | None = None) -> ErasureReport:
    """Erase what telline holds about the number but the consent ledger (see the module's docstring).
    The caller commits; run again, it finds nothing more to erase."""
    access.require_admin(user)
    e164 = _number(number, region)
    member_id = session.scalar(sa.select(Member.id).where(Member.phone == e164))
    texts = _message_filter(e164, member_id)
    refused = _changed(session, sa.update(Message).where(texts, Message.status.in_(UNSENT))
                       .values(status="refused", error_message="erased at the member's request", updated_at=utcnow()))
    blanked = _changed(session, sa.update(Message).where(texts, sa.or_(
        Message.body != "", Message.member_id.is_not(None), Message.from_number == e164, Message.to_number == e164))
        .values(body="", member_id=None, updated_at=utcnow(),
                from_number=sa.case((Message.from_number == e164, None), else_=Message.from_number),
                to_number=sa.case((Message.to_number == e164, None), else_=Message.to_number)))
    calls = _changed(session, sa.update(Call).where(_call_filter(e164, member_id)).values(
        member_id=None, name_recording_url=None,
        from_number=sa.case((Call.from_number == e164, None), else_=Call.from_number),
        to_number=sa.case((Call.to_number == e164, None), else_=Call.to_number)))
    if member_id is not None:
        for model in (ConferenceParticipant, InboxItem):
            session.execute(sa.update(model).where(model.member_id == member_id).values(member_id=None))
        session.execute(sa.delete(Membership).where(Membership.member_id == member_id))
        session.execute(sa.delete(Member).where(Member.id == member_id))
    opted_out = consent.current(session, e164) != consent.OPT_OUT
    if opted_out:
        consent.record(session, e164, consent.OPT_OUT, "erasure", detail=ERASED_DETAIL)
    session.flush()
    audit.record(session, user, "members.erase", target_type="member", target_id=member_id,
                 detail={"rows": blanked + calls, "count": refused})
    return ErasureReport(member_id, blanked, refused, calls, opted_out)


def _changed(session: Session, statement: sa.Update) -> int:
    return db.rows_changed(session.execute(statement))
