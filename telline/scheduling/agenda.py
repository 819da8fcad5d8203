"""A coordinator's view of meetings, past and upcoming, with the ids other commands take.

A meeting has a row (MeetingOccurrence) only once a caller arrived or it was cancelled; the
rest exist only in their series' rule. The agenda merges the two and writes nothing: listing
meetings must not create them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline.models import Group, MeetingOccurrence, MeetingSeries, OccurrenceStatus
from telline.scheduling.series import InvalidSeries, starts_before, starts_from


@dataclasses.dataclass(frozen=True)
class AgendaEntry:
    series_id: int
    title: str
    starts_at: dt.datetime  # UTC
    local_start: dt.datetime  # in the series' time zone
    occurrence_id: int | None  # None: no row yet (nobody called, not cancelled)
    status: OccurrenceStatus | None  # the row's, as read now (MeetingOccurrence.status_at); None without a row
    attended: int | None  # people, as telline.voice.roster.attendance counts them; None: still to come


@dataclasses.dataclass(frozen=True)
class Agenda:
    upcoming: list[AgendaEntry]  # soonest first; a meeting on now is the first
    past: list[AgendaEntry]  # latest first


def agenda(session: Session, now: dt.datetime, *, group_id: int | None = None, series_id: int | None = None,
           upcoming: int = 5, past: int = 5) -> Agenda:
    """The next `upcoming` and the last `past` meetings of the chosen series (all by default)."""
    if group_id is not None and session.get(Group, group_id) is None:
        raise InvalidSeries(f"there is no group {group_id}")
    if series_id is not None and session.get(MeetingSeries, series_id) is None:
        raise InvalidSeries(f"there is no meeting series {series_id}")
    query = sa.select(MeetingSeries, MeetingSeries.timezone)
    if group_id is not None:
        query = query.where(MeetingSeries.group_id == group_id)
    if series_id is not None:
        query = query.where(MeetingSeries.id == series_id)
    chosen = [(series, ZoneInfo(tz)) for series, tz in session.execute(query.order_by(MeetingSeries.id))]

    to_come: dict[tuple[int, dt.datetime], MeetingSeries] = {}
    gone: dict[tuple[int, dt.datetime], MeetingSeries] = {}
    for series, zone in chosen:
        length = dt.timedelta(minutes=series.duration_minutes)
        if series.active:  # a meeting on now counts as upcoming until its end
            to_come.update(((series.id, s), series) for s in starts_from(series, zone, now - length + _TICK, upcoming))
        gone.update(((series.id, s), series) for s in starts_before(series, zone, now - length, past))
    rows = _rows(session, [series.id for series, _ in chosen], now, upcoming, past)
    # A meeting of the rule that was moved shows where it now is, not where the rule put it.
    rule_starts = {start for _, start in (*to_come, *gone)}
    if rule_starts:
        rows += session.scalars(sa.select(MeetingOccurrence).where(
            MeetingOccurrence.series_id.in_([series.id for series, _ in chosen]),
            MeetingOccurrence.original_start.in_(rule_starts),
            MeetingOccurrence.starts_at != MeetingOccurrence.original_start))
    by_id = {series.id: series for series, _ in chosen}
    for row in rows:
        if row.starts_at != row.original_start:
            to_come.pop((row.series_id, row.original_start), None)
            gone.pop((row.series_id, row.original_start), None)
    for row in rows:
        ended = row.ends_at <= now
        (gone if ended else to_come).setdefault((row.series_id, row.starts_at), by_id[row.series_id])
    found = {(row.series_id, row.starts_at): row for row in rows}
    zones = {series.id: zone for series, zone in chosen}

    def entry(key: tuple[int, dt.datetime], series: MeetingSeries) -> AgendaEntry:
        row = found.get(key)
        started = key[1] <= now
        return AgendaEntry(series.id, series.title, key[1], key[1].astimezone(zones[series.id]),
                           row.id if row else None, row.status_at(now) if row else None,
                           (_attended(session, row.id) if row else 0) if started else None)

    soonest = sorted(to_come.items(), key=lambda item: (item[0][1], item[0][0]))[:upcoming]
    latest = sorted(gone.items(), key=lambda item: (item[0][1], item[0][0]), reverse=True)[:past]
    return Agenda([entry(k, s) for k, s in soonest], [entry(k, s) for k, s in latest])


_TICK = dt.timedelta(microseconds=1)  # "ends after now": starts after now - length


def _rows(session: Session, series_ids: list[int], now: dt.datetime, upcoming: int,
          past: int) -> list[MeetingOccurrence]:
    """Rows near now: a meeting moved off its rule (or a rule since changed) still shows."""
    if not series_ids:
        return []
    mine = MeetingOccurrence.series_id.in_(series_ids)
    later = session.scalars(sa.select(MeetingOccurrence).where(mine, MeetingOccurrence.ends_at > now)
                            .order_by(MeetingOccurrence.starts_at).limit(upcoming))
    earlier = session.scalars(sa.select(MeetingOccurrence).where(mine, MeetingOccurrence.ends_at <= now)
                              .order_by(MeetingOccurrence.starts_at.desc()).limit(past))
    return [*later, *earlier]


def _attended(session: Session, occurrence_id: int) -> int:
    from telline.voice.roster import attendance  # one rule for who counts as one person
    return len(attendance(session, occurrence_id))
