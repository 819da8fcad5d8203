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
import logging
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone
from telline.dedupe import first_time
from telline.models import (
    Announcement,
    Call,
    Conference,
    ConferenceParticipant,
    Group,
    MeetingOccurrence,
    MeetingSeries,
    Member,
    OccurrenceStatus,
    Role,
    utcnow,
)
from telline.tasks import enqueue_after_commit

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
    conference) unless a host or coordinator ended it (telline.voice.moderation.end_meeting)."""
    if not first_time(session, f"conf:{event.conference_sid}:{event.sequence}"):
        return "duplicate"
    occurrence = session.scalar(sa.select(MeetingOccurrence).where(sa.or_(
        MeetingOccurrence.conference_sid == event.conference_sid,
        MeetingOccurrence.conference_name == event.friendly_name)))
    if occurrence is None:
        session.commit()  # keep the key: a retry of an unknown conference changes nothing either
        log.warning("callback for a conference telline does not know", extra={"event": event.kind})
        return "unknown"
    at = event.at
    if event.kind == "conference-start":
        _conference_started(session, occurrence, event, at)
    elif event.kind == "conference-end":
        _conference_ended(session, occurrence, event, at)
    else:
        if occurrence.conference_sid is None and not _is_over(session, event.conference_sid):
            occurrence.conference_sid = event.conference_sid  # callers waiting for a host: the one running now
        if event.kind.startswith("participant-") and event.call_sid:
            _participant_event(session, occurrence, event, at)
    session.commit()
    return "applied"


def _conference(session: Session, occurrence: MeetingOccurrence, sid: str) -> Conference:
    found = session.get(Conference, sid)
    if found is None:
        found = Conference(sid=sid, occurrence_id=occurrence.id)
        session.add(found)
    return found


def _is_over(session: Session, sid: str) -> bool:
    conference = session.get(Conference, sid)
    return conference is not None and conference.ended_at is not None


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


def _participant_event(session: Session, occurrence: MeetingOccurrence, event: ConferenceEvent,
                       at: dt.datetime) -> None:
    p = session.scalar(sa.select(ConferenceParticipant).where(
        ConferenceParticipant.conference_sid == event.conference_sid,
        ConferenceParticipant.call_sid == event.call_sid))
    if p is None:
        call = session.scalar(sa.select(Call).where(Call.twilio_sid == event.call_sid))
        p = ConferenceParticipant(conference_sid=event.conference_sid, call_sid=event.call_sid,
                                  occurrence_id=occurrence.id, member_id=call.member_id if call else None,
                                  role=(call.role if call and call.role else "member"))
        session.add(p)
    kind = event.kind.removeprefix("participant-")
    if kind == "join":
        first_join = p.joined_at is None
        p.joined_at = min(filter(None, (p.joined_at, at)))
        call = session.scalar(sa.select(Call).where(Call.twilio_sid == event.call_sid))
        if first_join and call is not None and call.name_recording_url:
            from telline.voice.moderation import announce_name_job
            enqueue_after_commit(session, announce_name_job, call.id, queue="urgent")
    elif kind == "leave":
        p.left_at = max(filter(None, (p.left_at, at)))
    newer = event.sequence > (p.last_sequence if p.last_sequence is not None else -1)
    if newer:
        p.last_sequence = event.sequence
        if event.muted is not None:
            p.muted = event.muted.lower() == "true"
        if event.hold is not None:
            p.on_hold = event.hold.lower() == "true"
        if kind in ("mute", "unmute"):
            p.muted = kind == "mute"
        elif kind in ("hold", "unhold"):
            p.on_hold = kind == "hold"


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
