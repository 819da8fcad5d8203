"""When a series's meeting may be joined, and its occurrence row (created on first need)."""

from __future__ import annotations

import datetime as dt
import secrets
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from telline.models import MeetingOccurrence, MeetingSeries
from telline.scheduling.series import next_start


def joinable_start(series, zone: ZoneInfo, now: dt.datetime) -> dt.datetime | None:
    """The start of the series' meeting a caller may join at `now` — from `join_early_minutes`
    before it until its end — or None. `series`: a MeetingSeries or a directory.Series."""
    length = dt.timedelta(minutes=series.duration_minutes)
    start = next_start(series, zone, now - length)
    if start and start - dt.timedelta(minutes=series.join_early_minutes) <= now < start + length:
        return start
    return None


def occurrence(session: Session, series: MeetingSeries, start: dt.datetime) -> MeetingOccurrence:
    """The row for this meeting, created once even when many callers arrive at the same moment."""
    query = sa.select(MeetingOccurrence).where(MeetingOccurrence.series_id == series.id,
                                               MeetingOccurrence.starts_at == start)
    found = session.scalar(query)
    if found is not None:
        return found
    row = MeetingOccurrence(series_id=series.id, starts_at=start,
                            ends_at=start + dt.timedelta(minutes=series.duration_minutes),
                            conference_name=f"tl-{secrets.token_hex(12)}")  # opaque, unguessable
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return session.scalar(query)
    return row


def cancel(session: Session, series: MeetingSeries, start: dt.datetime) -> MeetingOccurrence:
    row = occurrence(session, series, start)
    row.status = "cancelled"
    return row
