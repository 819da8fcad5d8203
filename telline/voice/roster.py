"""The live roster, kept from Twilio's conference status callbacks, and attendance after.

Callbacks come twice and out of order. Each is handled once (ConferenceSid +
SequenceNumber); a participant's flags (muted, on hold) only take a callback newer
than the last one applied to them; join and leave times keep the earliest join
and the latest leave, whatever order they came in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import functools
import logging
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.orm.util import identity_key

from telline import db, phone
from telline.dedupe import first_time
from telline.models import (
    Announcement,
    Base,
    Call,
    Conference,
    ConferenceParticipant,
    Group,
    MeetingOccurrence,
    MeetingSeries,
    Member,
    OccurrenceStatus,
    Role,
    WebhookKey,
    utcnow,
)
from telline.tasks import enqueue_after_commit

if TYPE_CHECKING:
    # A callback's meeting and call as _MEETING_OF_EVENT reads them: id, conference_sid, call_id,
    # member_id, role, named.
    MeetingRow = sa.Row[*tuple[Any, ...]]

log = logging.getLogger(__name__)
_EARLIEST_EVENT = dt.datetime(2008, 1, 1, tzinfo=dt.UTC)  # Twilio's first year
_CLOCK_SKEW = dt.timedelta(days=1)  # how far ahead of ours Twilio's clock may plausibly be
# What became of one callback (a webhook metric): applied, a repeat, or for a conference we do not know.
Applied = Literal["applied", "duplicate", "unknown"]


@dataclasses.dataclass(frozen=True)
class ConferenceEvent:
    conference_sid: str
    friendly_name: str
    kind: str  # conference-start, participant-join, participant-mute, …
    sequence: int
    call_sid: str | None = None
    muted: str | None = None
    hold: str | None = None
    timestamp: str | None = None
    reason: str | None = None  # ReasonConferenceEnded, on conference-end

    @property
    def at(self) -> dt.datetime:
        """When Twilio says it happened, in UTC; our own clock when its Timestamp is missing, malformed or
        absurd (before Twilio existed, or more than a day ahead): a year 1 or 9999 would otherwise break
        every duration computed from it, or not even convert to UTC."""
        now = utcnow()
        try:
            parsed = email.utils.parsedate_to_datetime(self.timestamp or "")
            parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        except (TypeError, ValueError, OverflowError):
            return now
        return parsed if _EARLIEST_EVENT <= parsed <= now + _CLOCK_SKEW else now


def apply(session: Session, event: ConferenceEvent) -> Applied:
    """Apply one callback; returns what happened (for metrics): applied, duplicate, unknown.

    A conference that ends — its last caller left, or a host with "host leaving ends" did — ends that
    conference only: the meeting stays open for the rest of its slot (the next caller starts a new
    conference) unless a host or coordinator ended it (telline.voice.moderation.end_meeting).

    Participant callbacks — every caller brings at least one, all at a meeting's start — are a few
    statements of their own (_participant_event), on PostgreSQL one (_participant_in_one_statement)
    when nothing else has to happen; a conference's start and end (once per conference) go through
    the ORM."""
    at = event.at
    if event.kind.startswith("participant-") and event.call_sid and session.get_bind().dialect.name == "postgresql":
        done = _participant_in_one_statement(session, event, at)
        if done is not None:
            return done
    if not first_time(session, _key(event)):
        return "duplicate"
    names = {"conference_sid": event.conference_sid, "friendly_name": event.friendly_name}
    if event.kind in ("conference-start", "conference-end"):
        occurrence = session.scalar(sa.select(MeetingOccurrence).where(_OF_THIS_CONFERENCE), names)
        if occurrence is None:
            return _unknown(session, event)
        if event.kind == "conference-start":
            _conference_started(session, occurrence, event, at)
        else:
            _conference_ended(session, occurrence, event, at)
    else:
        meeting = session.connection().execute(_MEETING_OF_EVENT, {**names, "call_sid": event.call_sid}).first()
        if meeting is None:
            return _unknown(session, event)
        if meeting.conference_sid is None:  # callers waiting for a host: the conference running now
            session.connection().execute(_CLAIM_CONFERENCE, {"occurrence_id": meeting.id,
                                                             "conference_sid": event.conference_sid})
            _forget(session, MeetingOccurrence, meeting.id)
        if event.kind.startswith("participant-") and event.call_sid:
            _participant_event(session, meeting, event, at)
    session.commit()
    return "applied"


def _unknown(session: Session, event: ConferenceEvent) -> Applied:
    session.commit()  # keep the key: a retry of an unknown conference changes nothing either
    log.warning("callback for a conference telline does not know", extra={"event": event.kind})
    return "unknown"


def _forget(session: Session, model: type[Base], primary_key: int) -> None:
    """A row changed by a statement of our own, not through the ORM: an object of it this session
    holds (a test's, a job's) is read afresh when next used."""
    held = session.identity_map.get(identity_key(model, primary_key))
    if held is not None:
        session.expire(held)


def _conference(session: Session, occurrence: MeetingOccurrence, sid: str) -> Conference:
    found = session.get(Conference, sid)
    if found is None:
        found = Conference(sid=sid, occurrence_id=occurrence.id)
        session.add(found)
    return found


def _conference_started(session: Session, occurrence: MeetingOccurrence, event: ConferenceEvent,
                        at: dt.datetime) -> None:
    """A host arrived: this conference is the meeting's from now (Twilio runs one conference per
    FriendlyName at a time), unless it is one whose end came first (callbacks arrive out of order)."""
    conference = _conference(session, occurrence, event.conference_sid)
    if conference.ended_at is not None:
        return
    conference.started_at = min(filter(None, (conference.started_at, at)))
    occurrence.conference_sid = event.conference_sid
    if occurrence.status == OccurrenceStatus.SCHEDULED:
        occurrence.status = OccurrenceStatus.LIVE
    occurrence.started_at = min(filter(None, (occurrence.started_at, at)))
    from telline.voice.dialout import dial_out_members
    enqueue_after_commit(session, dial_out_members, occurrence.id, queue="urgent")


def _conference_ended(session: Session, occurrence: MeetingOccurrence, event: ConferenceEvent,
                      at: dt.datetime) -> None:
    conference = _conference(session, occurrence, event.conference_sid)
    conference.ended_at, conference.end_reason = at, (event.reason or None)
    for p in _present(session, occurrence.id, event.conference_sid):
        p.left_at = at
    if occurrence.conference_sid != event.conference_sid:
        return  # an older conference's end, arriving late
    occurrence.conference_sid = None
    if occurrence.status == OccurrenceStatus.ENDED:
        occurrence.ended_at = at  # the end a host asked for, as Twilio timed it
    elif occurrence.status == OccurrenceStatus.LIVE:
        if at >= occurrence.ends_at:  # the slot is over: so is the meeting
            occurrence.status, occurrence.ended_at = OccurrenceStatus.ENDED, at
        else:  # emptied, or its host left: the next caller starts it again
            occurrence.status = OccurrenceStatus.SCHEDULED


# A participant's flags as one callback tells them: its event (mute, unmute, hold, unhold) says more
# than the Muted/Hold fields it carries.
_SETS_MUTED = {"mute": True, "unmute": False}
_SETS_HOLD = {"hold": True, "unhold": False}


def _flag(field: str | None, kind: str, by_kind: dict[str, bool]) -> bool | None:
    """What a callback says of a flag: None when it says nothing."""
    if kind in by_kind:
        return by_kind[kind]
    return None if field is None else field.lower() == "true"


def _participant_event(session: Session, meeting: MeetingRow, event: ConferenceEvent, at: dt.datetime) -> None:
    """One statement (_upsert_participant) writes the participant's row or brings it up to date,
    whatever order the callbacks come in; see the module's docstring for the rule."""
    assert event.call_sid is not None
    kind = event.kind.removeprefix("participant-")
    first_join = False
    if kind == "join" and meeting.call_id is not None and meeting.named:
        # A caller whose first name is played to the room as they join (the record_names option):
        # the one case that needs to know whether this join is their first.
        first_join = session.connection().execute(_JOINED_BEFORE, {
            "conference_sid": event.conference_sid, "call_sid": event.call_sid}).first() is None
    participant_id = session.connection().execute(_upsert_participant(session.get_bind().dialect.name), {
        **_told(event, at), "occurrence_id": meeting.id, "member_id": meeting.member_id,
        "as_role": meeting.role or "member"}).scalar_one()
    _forget(session, ConferenceParticipant, participant_id)
    if first_join:
        from telline.voice.moderation import announce_name_job
        enqueue_after_commit(session, announce_name_job, meeting.call_id, queue="urgent")


def _key(event: ConferenceEvent) -> str:
    return f"conf:{event.conference_sid}:{event.sequence}"


def _told(event: ConferenceEvent, at: dt.datetime) -> dict[str, object]:
    """What a participant callback says, as the parameters of _participant_row()."""
    kind = event.kind.removeprefix("participant-")
    return {"conference_sid": event.conference_sid, "call_sid": event.call_sid,
            "joined": at if kind == "join" else None, "left": at if kind == "leave" else None,
            "sequence": event.sequence, "now_muted": _flag(event.muted, kind, _SETS_MUTED),
            "now_on_hold": _flag(event.hold, kind, _SETS_HOLD)}


def _participant_in_one_statement(session: Session, event: ConferenceEvent, at: dt.datetime) -> Applied | None:
    """PostgreSQL: the callback's key and the participant's row (the same rule as _participant_event)
    in one durable statement (_one_statement, on db.durable_statement_connection), when that is all it takes — the
    meeting has its running conference, and no name is to be played for this join. None, having
    written nothing, for anything else (an unknown conference, callers waiting for a host, a
    recorded name), which apply() then handles in full."""
    with db.durable_statement_connection(session) as connection:
        done = connection.execute(_one_statement(), {
            **_told(event, at), "friendly_name": event.friendly_name, "webhook_key": _key(event),
            "now": utcnow(), "is_join": event.kind == "participant-join"}).one()
    if done.occurrence_id is None or not done.simple:
        return None
    if session.in_transaction():  # the session's own connection served (tests' one transaction)
        session.commit()
    if done.participant_id is None:
        return "duplicate"
    _forget(session, ConferenceParticipant, done.participant_id)
    return "applied"


# The participant callbacks' statements, built once: a meeting's start brings every caller at once.
_OF_THIS_CONFERENCE = sa.or_(MeetingOccurrence.conference_sid == sa.bindparam("conference_sid"),
                             MeetingOccurrence.conference_name == sa.bindparam("friendly_name"))
# The meeting a callback belongs to, and the call it is about (none: a call telline did not answer).
_MEETING_OF_EVENT = (
    sa.select(MeetingOccurrence.id, MeetingOccurrence.conference_sid, Call.id.label("call_id"), Call.member_id,
              Call.role, Call.name_recording_url.is_not(None).label("named"))
    .select_from(MeetingOccurrence)
    .outerjoin(Call, Call.twilio_sid == sa.bindparam("call_sid", type_=Call.twilio_sid.type))
    .where(_OF_THIS_CONFERENCE))
# The conference a callback names becomes the meeting's running one, unless one is already, or this
# one's end came first (callbacks arrive out of order).
_CLAIM_CONFERENCE = (
    sa.update(MeetingOccurrence)
    .where(MeetingOccurrence.id == sa.bindparam("occurrence_id"), MeetingOccurrence.conference_sid.is_(None),
           ~sa.exists().where(Conference.sid == sa.bindparam("conference_sid"), Conference.ended_at.is_not(None)))
    .values(conference_sid=sa.bindparam("conference_sid")))
_JOINED_BEFORE = sa.select(ConferenceParticipant.id).where(
    ConferenceParticipant.conference_sid == sa.bindparam("conference_sid"),
    ConferenceParticipant.call_sid == sa.bindparam("call_sid"), ConferenceParticipant.joined_at.is_not(None))


def _earliest(kept: InstrumentedAttribute[dt.datetime | None],
              told: sa.ColumnElement[dt.datetime]) -> sa.Case[dt.datetime]:
    """The earlier of two times, either of which may be NULL (a portable LEAST that ignores NULLs)."""
    return sa.case((sa.and_(told.is_not(None), sa.or_(kept.is_(None), told < kept)), told), else_=kept)


def _latest(kept: InstrumentedAttribute[dt.datetime | None],
            told: sa.ColumnElement[dt.datetime]) -> sa.Case[dt.datetime]:
    return sa.case((sa.and_(told.is_not(None), sa.or_(kept.is_(None), told > kept)), told), else_=kept)


_MUTED = sa.bindparam("now_muted", type_=sa.Boolean)  # None: the callback says nothing of it
_ON_HOLD = sa.bindparam("now_on_hold", type_=sa.Boolean)
_JOINED = sa.bindparam("joined", type_=ConferenceParticipant.joined_at.type)  # None: not a join
_LEFT = sa.bindparam("left", type_=ConferenceParticipant.left_at.type)  # None: not a leave
_SEQUENCE = sa.bindparam("sequence", type_=sa.Integer)


def _participant_row(occurrence_id: sa.ColumnElement[int], member_id: sa.ColumnElement[int | None],
                     role: sa.ColumnElement[str]) -> dict[str, sa.ColumnElement[Any]]:
    """A participant's row as the callback would write it for a call not seen in this conference yet
    (its meeting, member and role given: from parameters, or from the statement's own reading)."""
    return {"conference_sid": sa.bindparam("conference_sid", type_=ConferenceParticipant.conference_sid.type),
            "call_sid": sa.bindparam("call_sid", type_=ConferenceParticipant.call_sid.type),
            "occurrence_id": occurrence_id, "member_id": member_id, "role": role,
            "muted": sa.func.coalesce(_MUTED, sa.false()), "on_hold": sa.func.coalesce(_ON_HOLD, sa.false()),
            "hand_raised": sa.false(), "last_sequence": _SEQUENCE, "joined_at": _JOINED, "left_at": _LEFT}


def _keep_or_update(row: postgresql.Insert | sqlite.Insert) -> postgresql.Insert | sqlite.Insert:
    """THE rule for a participant's row, whatever order the callbacks come in: a callback for a call
    not seen in this conference yet writes its row (_participant_row); one for a row there already
    keeps the earliest join and the latest leave, and takes its flags only if it is newer
    (SequenceNumber) than the last one applied to that row."""
    p = ConferenceParticipant
    newer = _SEQUENCE > sa.func.coalesce(p.last_sequence, -1)
    return row.on_conflict_do_update(
        index_elements=[p.conference_sid, p.call_sid],
        set_={"joined_at": _earliest(p.joined_at, _JOINED), "left_at": _latest(p.left_at, _LEFT),
              "last_sequence": sa.case((newer, _SEQUENCE), else_=p.last_sequence),
              "muted": sa.case((sa.and_(newer, _MUTED.is_not(None)), _MUTED), else_=p.muted),
              "on_hold": sa.case((sa.and_(newer, _ON_HOLD.is_not(None)), _ON_HOLD), else_=p.on_hold)})


@functools.cache
def _upsert_participant(dialect: str) -> sa.Executable:
    """The participant's row, one statement on either database (_keep_or_update)."""
    insert = db.insert_for(dialect)
    row = insert(ConferenceParticipant).values(_participant_row(
        sa.bindparam("occurrence_id", type_=sa.Integer), sa.bindparam("member_id", type_=sa.Integer),
        sa.bindparam("as_role", type_=ConferenceParticipant.role.type)))
    return _keep_or_update(row).returning(ConferenceParticipant.id)


@functools.cache
def _one_statement() -> sa.Select[tuple[int | None, bool, int | None]]:
    """PostgreSQL: apply() for a participant callback in one statement (_participant_in_one_statement).
    Every part reads the database as it was when the statement began (one snapshot)."""
    meeting = _MEETING_OF_EVENT.limit(1).cte("meeting")
    simple = (sa.select(meeting.c.id, meeting.c.member_id, meeting.c.role)
              .where(meeting.c.conference_sid.is_not(None),
                     sa.not_(sa.and_(sa.bindparam("is_join", type_=sa.Boolean), meeting.c.named)))
              .cte("simple"))
    new_key = (postgresql.insert(WebhookKey).from_select(
        ["key", "received_at"],
        sa.select(sa.bindparam("webhook_key", type_=WebhookKey.key.type),
                  sa.bindparam("now", type_=WebhookKey.received_at.type)).where(sa.exists(sa.select(simple.c.id))))
        .on_conflict_do_nothing(index_elements=[WebhookKey.key]).returning(WebhookKey.key).cte("new_key"))
    source = _participant_row(simple.c.id, simple.c.member_id, sa.func.coalesce(simple.c.role, "member"))
    row = postgresql.insert(ConferenceParticipant).from_select(
        list(source), sa.select(*source.values()).select_from(simple).join(new_key, sa.true()))
    participant = _keep_or_update(row).returning(ConferenceParticipant.id).cte("participant")
    return sa.select(sa.select(meeting.c.id).scalar_subquery().label("occurrence_id"),
                     sa.exists(sa.select(simple.c.id)).label("simple"),
                     sa.select(participant.c.id).scalar_subquery().label("participant_id"))


def _present(session: Session, occurrence_id: int, conference_sid: str) -> list[ConferenceParticipant]:
    return list(session.scalars(sa.select(ConferenceParticipant).where(
        ConferenceParticipant.occurrence_id == occurrence_id, ConferenceParticipant.conference_sid == conference_sid,
        ConferenceParticipant.joined_at.is_not(None), ConferenceParticipant.left_at.is_(None))
        .order_by(ConferenceParticipant.id)))


@dataclasses.dataclass(frozen=True)
class RosterLine:
    participant_id: int
    shown_as: str  # the member's chosen name, or "Caller •••5678": never a full number
    role: Role
    muted: bool
    on_hold: bool
    hand_raised: bool
    joined_at: dt.datetime | None
    left_at: dt.datetime | None

    @property
    def present(self) -> bool:
        return self.joined_at is not None and self.left_at is None


def caller_number(call: type[Call]) -> sa.Case[str | None]:
    """The member's side of a call: who called in, or whom we dialled (a SQL expression)."""
    return sa.case((call.direction == "outbound", call.to_number), else_=call.from_number)


def roster(session: Session, occurrence_id: int) -> list[RosterLine]:
    rows = session.execute(
        sa.select(ConferenceParticipant, Member.display_name, caller_number(Call))
        .outerjoin(Member, Member.id == ConferenceParticipant.member_id)
        .outerjoin(Call, Call.twilio_sid == ConferenceParticipant.call_sid)
        .where(ConferenceParticipant.occurrence_id == occurrence_id).order_by(ConferenceParticipant.id))
    return [RosterLine(p.id, name or f"Caller {phone.mask_tail(number)}", p.role, p.muted, p.on_hold,
                       p.hand_raised, p.joined_at, p.left_at) for p, name, number in rows]


@dataclasses.dataclass(frozen=True)
class Attendance:
    shown_as: str
    member_id: int | None
    role: Role
    minutes: float


def attendance(session: Session, occurrence_id: int) -> list[Attendance]:
    """Who attended and for how long. A person who rejoined is counted once, all stays added:
    a member by their id, anyone else by their number — or, withheld, by their call."""
    rows = session.execute(
        sa.select(ConferenceParticipant, Member.display_name, caller_number(Call))
        .outerjoin(Member, Member.id == ConferenceParticipant.member_id)
        .outerjoin(Call, Call.twilio_sid == ConferenceParticipant.call_sid)
        .where(ConferenceParticipant.occurrence_id == occurrence_id, ConferenceParticipant.joined_at.is_not(None))
        .order_by(ConferenceParticipant.id))
    people: dict[tuple[str, int | str], Attendance] = {}
    for p, name, number in rows:
        who = ("member", p.member_id) if p.member_id else ("number", number) if number else ("call", p.call_sid)
        assert p.joined_at is not None  # the query takes only those who joined
        minutes = ((p.left_at or utcnow()) - p.joined_at).total_seconds() / 60
        before = people.get(who)
        people[who] = Attendance(name or f"Caller {phone.mask_tail(number)}", p.member_id,
                                 "host" if p.role == "host" or (before and before.role == "host") else p.role,
                                 (before.minutes if before else 0.0) + minutes)
    return [dataclasses.replace(a, minutes=round(a.minutes, 1)) for a in people.values()]


def announcement_text(session: Session, announcement_id: int) -> tuple[str, str] | None:
    row = session.execute(
        sa.select(Announcement.text, Group.language)
        .join(MeetingOccurrence, MeetingOccurrence.id == Announcement.occurrence_id)
        .join(MeetingSeries, MeetingSeries.id == MeetingOccurrence.series_id)
        .join(Group, Group.id == MeetingSeries.group_id)
        .where(Announcement.id == announcement_id)).first()
    return (row[0], row[1]) if row else None


def name_recording(session: Session, call_id: int) -> tuple[str, str] | None:
    call = session.get(Call, call_id)
    if call is None or not call.name_recording_url or call.occurrence_id is None:
        return None
    language = session.scalars(
        sa.select(Group.language).join(MeetingSeries, MeetingSeries.group_id == Group.id)
        .join(MeetingOccurrence, MeetingOccurrence.series_id == MeetingSeries.id)
        .where(MeetingOccurrence.id == call.occurrence_id)).one()
    return call.name_recording_url, language
