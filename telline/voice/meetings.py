"""When a series's meeting may be joined, who may take a seat in it, and its occurrence row
(created on first need)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from telline import db
from telline.models import ConferenceParticipant, MeetingOccurrence, OccurrenceStatus
from telline.scheduling.series import Changes, SeriesTimes, first_meeting

Refusal = Literal["cancelled", "ended", "locked", "full"]

# How many callers are in the meeting now (across its conferences), for "full".
PRESENT = (sa.select(sa.func.count(ConferenceParticipant.id))
           .where(ConferenceParticipant.occurrence_id == MeetingOccurrence.id,
                  ConferenceParticipant.joined_at.is_not(None), ConferenceParticipant.left_at.is_(None))
           .correlate(MeetingOccurrence).scalar_subquery())


def refusal(as_host: sa.ColumnElement[bool], max_participants: sa.ColumnElement[int]) -> sa.Case[str]:
    """THE rule for who may take a seat in a meeting that is on now, as one SQL expression over its
    occurrence row: NULL when the caller may, else why not (a Refusal). Both ways into a meeting
    read it — the quick path's one statement and the full path's read of the occurrence — so they
    cannot disagree. `as_host`, `max_participants`: SQL expressions (bind parameters, in both).

    A cancelled meeting refuses everyone; an ended one every member (its host may restart it in its
    slot: see reopen); a locked or full one every member but never a host."""
    member = sa.not_(as_host)
    return sa.case(
        (MeetingOccurrence.status == OccurrenceStatus.CANCELLED, sa.literal("cancelled")),
        (sa.and_(member, MeetingOccurrence.status == OccurrenceStatus.ENDED), sa.literal("ended")),
        (sa.and_(member, MeetingOccurrence.locked.is_(True)), sa.literal("locked")),
        (sa.and_(member, PRESENT >= max_participants), sa.literal("full")),
        else_=sa.null())


def reopen(session: Session, occurrence_id: int) -> bool:
    """A host calls back into the meeting they (or a coordinator) ended, within its slot: it is open
    again. True when it was ended."""
    return bool(db.rows_changed(session.execute(
        sa.update(MeetingOccurrence)
        .where(MeetingOccurrence.id == occurrence_id, MeetingOccurrence.status == OccurrenceStatus.ENDED)
        .values(status=OccurrenceStatus.SCHEDULED, ended_at=None))))


def joinable_start(series: SeriesTimes, zone: ZoneInfo, now: dt.datetime,
                   moved: Changes | None = None) -> dt.datetime | None:
    """The start of the series' meeting a caller may join at `now` — from `join_early_minutes`
    before it until its end — or None. `series`: a MeetingSeries or a directory.Series; `moved`:
    its moved meetings (series.changes), so a moved one is joined where it now is."""
    found = first_meeting(series, zone, now, moved or {})
    if found and found[0] - dt.timedelta(minutes=series.join_early_minutes) <= now < found[1]:
        return found[0]
    return None


def occurrence(session: Session, series: SeriesTimes, start: dt.datetime) -> MeetingOccurrence:
    """The row for this meeting, created once even when many callers arrive at the same moment."""
    query = sa.select(MeetingOccurrence).where(MeetingOccurrence.series_id == series.id,
                                               MeetingOccurrence.original_start == start)
    found = session.scalar(query)
    if found is not None:
        return found
    row = MeetingOccurrence(series_id=series.id, original_start=start, starts_at=start,
                            ends_at=start + dt.timedelta(minutes=series.duration_minutes),
                            conference_name=f"tl-{secrets.token_hex(12)}")  # opaque, unguessable
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another caller's row, committed first
        return session.scalars(query).one()
    return row
