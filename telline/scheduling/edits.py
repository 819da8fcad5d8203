"""Edit a series from a date on: a new time, weekday, rule or length for the meetings to come.

The model: the series is split. The old row keeps every meeting before the date — its
occurrences, attendance and rows stay where they are — and its rule gets UNTIL the day before.
A continuation row takes the new rule from the date, with the old row's title, zone, settings,
reminders and host. Members keep one access code: the codes (access code and host PIN) move to
the continuation when the old part's last meeting is over — at once if it has none left to come,
else by a durable task due at that moment (a Task row: the sweeper re-sends it if Redis loses it).
Until then the continuation has codes of its own nobody was told, and no meeting to join yet.
The old row, once it gives its codes up, is inactive, with fresh unused codes.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from dateutil.rrule import rrulestr
from sqlalchemy.orm import Session

from telline import db
from telline.models import MeetingOccurrence, MeetingSeries, utcnow
from telline.scheduling.series import InvalidSeries, _unused_code, create_series, local_start, starts_before, to_utc
from telline.tasks import durable, enqueue_after_commit

_COPIED = ("join_early_minutes", "max_participants", "caller_id_joins", "host_leaving_ends", "announce_entries",
           "record_names", "record", "wait_url")


def edit_from(session: Session, series_id: int, from_date: dt.date, *, first_start_local: dt.datetime | None = None,
              rrule: str | None = None, duration_minutes: int | None = None,
              now: dt.datetime | None = None) -> MeetingSeries:
    """Meetings from `from_date` (the series' local date) on follow the new rule, time and length
    (each the old one's when not given; `first_start_local`: naive, the first new meeting, on or
    after the date). Returns the continuation series."""
    now = now or utcnow()
    old = session.get(MeetingSeries, series_id)
    if old is None:
        raise InvalidSeries(f"there is no meeting series {series_id}")
    if not old.active:
        raise InvalidSeries("this series has ended: edit the series that continues it")
    zone = ZoneInfo(old.timezone)
    cutoff = to_utc(dt.datetime.combine(from_date, dt.time()), zone)
    if cutoff <= old.first_start:
        raise InvalidSeries("the date is before the series' first meeting: change the series itself instead")
    if cutoff <= now:
        raise InvalidSeries("the date must still be to come")
    if session.scalar(sa.select(MeetingOccurrence.id).where(MeetingOccurrence.series_id == old.id,
                                                            MeetingOccurrence.original_start >= cutoff).limit(1)):
        raise InvalidSeries("meetings of the series from that date on were moved or cancelled: restore them first "
                            "(a new rule would leave them behind)")
    old_parts = [p for p in old.rrule.split(";") if not p.startswith(("COUNT=", "UNTIL="))]
    until = f"UNTIL={from_date - dt.timedelta(days=1):%Y%m%d}T235959"
    first = first_start_local or dt.datetime.combine(from_date, local_start(old.first_start, zone).time())
    if first.tzinfo is None and first.date() < from_date:
        raise InvalidSeries("the first new meeting is on or after the date the change takes effect")
    continuation = create_series(
        session, group=old.group, line=old.line, title=old.title, first_start_local=first,
        rrule=rrule or ";".join(old_parts), duration_minutes=duration_minutes or old.duration_minutes,
        timezone=old.timezone, reminder_offsets=list(old.reminder_offsets), host_user_id=old.host_user_id, now=now,
        **{name: (getattr(old, name) or "") if name == "wait_url" else getattr(old, name)  # type: ignore[arg-type]
           for name in _COPIED if name != "record_names"})
    continuation.record_names = old.record_names
    old.rrule = ";".join([*old_parts, until])
    rrulestr(old.rrule, dtstart=local_start(old.first_start, zone))  # a rule dateutil read before, cut short
    last = starts_before(old, zone, cutoff, 1)
    last_end = last[0] + dt.timedelta(minutes=old.duration_minutes) if last else old.first_start
    if continuation.first_start < last_end:
        raise InvalidSeries("the first new meeting would start before the last old one ends")
    session.flush()
    if last_end <= now:
        hand_over(session, old.id, continuation.id)
    else:
        enqueue_after_commit(session, hand_over_codes, old.id, continuation.id, at=last_end)
    return continuation


def hand_over(session: Session, old_id: int, new_id: int) -> None:
    """The continuation takes the old part's codes; the old part, over, gets unused ones and ends."""
    old, new = session.get_one(MeetingSeries, old_id), session.get_one(MeetingSeries, new_id)
    if not old.active:  # handed over already (a task run twice)
        return
    code, pin = old.access_code, old.host_pin
    old.access_code, old.host_pin = f"x{old.id}"[:12], None  # not digits: no caller can type it
    session.flush()
    new.access_code, new.host_pin = code, pin
    session.flush()
    old.access_code = _unused_code(session, old.line_id)
    old.active = False
    session.flush()


@durable
def hand_over_codes(old_id: int, new_id: int) -> None:
    session = db.session()
    hand_over(session, old_id, new_id)
    session.commit()
