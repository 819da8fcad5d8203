"""Recurring meetings: create a series, find its next start.

A series stores its first start (UTC) and an RRULE. Recurrence is computed in the
group's wall-clock time, so "Tuesdays at 19:00" stays 19:00 across DST changes.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from dateutil.rrule import rrulestr
from sqlalchemy.orm import Session

from telline.models import Group, Line, MeetingOccurrence, MeetingSeries, OccurrenceStatus

ACCESS_CODE_DIGITS = 7  # 10 million codes per line: not guessable in the tries a caller gets


class InvalidSeries(ValueError):
    pass


def create_series(session: Session, *, group: Group, line: Line, title: str, first_start_local: dt.datetime,
                  rrule: str = "FREQ=WEEKLY", duration_minutes: int = 60) -> MeetingSeries:
    """first_start_local is naive, in the group's time zone (what a coordinator types)."""
    if first_start_local.tzinfo is not None:
        raise InvalidSeries("give the first start as the group's local time, without a zone")
    if line.group_id != group.id:
        raise InvalidSeries("the dial-in line belongs to another group")
    if not 5 <= duration_minutes <= 24 * 60:
        raise InvalidSeries("a meeting lasts between 5 minutes and 24 hours")
    try:
        rrulestr(rrule, dtstart=first_start_local)
    except (ValueError, TypeError) as exc:
        raise InvalidSeries(f"the recurrence rule {rrule!r} is not valid: {exc}") from None
    zone = ZoneInfo(group.timezone)
    series = MeetingSeries(group_id=group.id, line_id=line.id, title=title.strip()[:120] or group.name,
                           first_start=first_start_local.replace(tzinfo=zone).astimezone(dt.timezone.utc),
                           rrule=rrule, duration_minutes=duration_minutes)
    series.access_code = _unused_code(session, line.id)
    series.host_pin = _unused_code(session, line.id, also_taken={series.access_code})
    session.add(series)
    return series


def next_start(series: MeetingSeries, zone: ZoneInfo, after: dt.datetime) -> dt.datetime | None:
    """The first start at or after `after` (aware), as an aware UTC datetime."""
    rule = _rule(series.rrule, series.first_start.astimezone(zone).replace(tzinfo=None))
    found = rule.after(after.astimezone(zone).replace(tzinfo=None))
    return found.replace(tzinfo=zone).astimezone(dt.timezone.utc) if found else None


class _Rule:
    """A parsed rule that remembers its last answer. dateutil walks a rule from its first
    occurrence on every query (a daily series ten years old: ~0.4 ms a query), and a meeting's
    callers all ask nearly the same question: the first start at or after `after` is the same
    for any `after` between the last one asked and the start it found."""

    def __init__(self, rule):
        self.rule, self.last = rule, None  # last: (after, the start found)

    def after(self, after: dt.datetime) -> dt.datetime | None:
        last = self.last
        if last is not None and last[0] <= after <= last[1]:
            return last[1]
        found = self.rule.after(after, inc=True)
        if found is not None:
            self.last = (after, found)  # one assignment: a concurrent reader sees the old or the new pair
        return found


@functools.lru_cache(maxsize=512)
def _rule(rrule: str, local_first: dt.datetime) -> _Rule:
    # Parsed once per process, its occurrences cached (cache=True) for the walks it still makes.
    return _Rule(rrulestr(rrule, dtstart=local_first, cache=True))


def next_meeting(session: Session, group: Group, now: dt.datetime) -> tuple[MeetingSeries, dt.datetime] | None:
    """The group's next meeting, or the one on now; never a cancelled one. Every "next meeting" a
    member hears or reads comes from here (the phone, "press 1" for a reminder, NEXT)."""
    zone = ZoneInfo(group.timezone)
    series_list = session.scalars(sa.select(MeetingSeries).where(
        MeetingSeries.group_id == group.id, MeetingSeries.active.is_(True))).all()
    if not series_list:
        return None
    # Cancelled meetings are rows (the rule knows nothing of them): the few ahead, in one query.
    earliest = now - dt.timedelta(minutes=max(series.duration_minutes for series in series_list))
    cancelled = {(row.series_id, row.starts_at) for row in session.execute(
        sa.select(MeetingOccurrence.series_id, MeetingOccurrence.starts_at).where(
            MeetingOccurrence.series_id.in_([series.id for series in series_list]),
            MeetingOccurrence.status == OccurrenceStatus.CANCELLED, MeetingOccurrence.starts_at >= earliest))}
    best = None
    for series in series_list:
        start = next_start(series, zone, now - dt.timedelta(minutes=series.duration_minutes))
        while start is not None and (series.id, start) in cancelled:
            start = next_start(series, zone, start + dt.timedelta(microseconds=1))
        if start and (best is None or start < best[1]):
            best = (series, start)
    return best


def _unused_code(session: Session, line_id: int, also_taken: set[str] = frozenset()) -> str:
    """A code no meeting on this line uses, as an access code or a host PIN."""
    rows = session.execute(sa.select(MeetingSeries.access_code, MeetingSeries.host_pin)
                           .where(MeetingSeries.line_id == line_id))
    taken = {code for row in rows for code in row if code} | set(also_taken)
    while True:
        code = f"{secrets.randbelow(10 ** ACCESS_CODE_DIGITS):0{ACCESS_CODE_DIGITS}d}"
        if code not in taken and len(set(code)) > 2:  # no 0000000 or 1212121
            return code
