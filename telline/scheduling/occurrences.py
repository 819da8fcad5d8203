"""Cancel or move one meeting of a series, and tell the members.

A meeting keeps one row however often it moves: original_start (where the rule puts it, its
RECURRENCE-ID) never changes, starts_at/ends_at say where it is. Moving it back to its rule's
time and length restores it. The join path, next_meeting, NEXT and the agenda read moved rows
through series.first_meeting(); reminders (telline.scheduling.reminders) read the row at send time.

Members who opted in are told of each change that happened, once: the notice job carries the
change it tells (cancelled, or the new start) and sends nothing if the meeting has changed again
before it ran (the later change's notice tells the latest). Its texts' idempotency keys name the
change, so a retried job sends nothing twice. A meeting moved and moved back before its first
notice went tells nobody. Cancelling a cancelled meeting, or moving a meeting
where it already is, changes nothing and tells nobody.
"""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import db
from telline.models import Group, MeetingOccurrence, MeetingSeries, Member, Message, OccurrenceStatus, utcnow
from telline.scheduling.series import InvalidSeries, changes, check_duration, next_start, starts_from, to_utc
from telline.sms import segments
from telline.sms.broadcast import batch_size, batch_timeout, recipients, sender_line
from telline.sms.outbound import retry_policy
from telline.tasks import durable, enqueue_after_commit
from telline.texts import t, when

log = logging.getLogger(__name__)


def cancel(session: Session, series_id: int, original_start: dt.datetime,
           now: dt.datetime | None = None) -> MeetingOccurrence:
    """Cancel the meeting the rule puts at `original_start` (aware): callers then hear the next one,
    members are told. Cancelling it again changes nothing."""
    now = now or utcnow()
    series, row = _meeting(session, series_id, original_start, now)
    if row.status == OccurrenceStatus.CANCELLED:
        return row
    row.status = OccurrenceStatus.CANCELLED
    _tell(session, row, now)
    return row


def move(session: Session, series_id: int, original_start: dt.datetime, new_local_start: dt.datetime,
         duration_minutes: int | None = None, now: dt.datetime | None = None) -> MeetingOccurrence:
    """Move the meeting the rule puts at `original_start` (aware) to `new_local_start` (naive, in the
    series' zone), for `duration_minutes` (the series' by default). Moving it to where it is
    changes nothing; to its rule's time and length restores it."""
    now = now or utcnow()
    series, row = _meeting(session, series_id, original_start, now)
    if row.status == OccurrenceStatus.CANCELLED:
        raise InvalidSeries("this meeting is cancelled: it cannot be moved")
    if new_local_start.tzinfo is not None:
        raise InvalidSeries("give the new start as local time, without a zone")
    minutes = series.duration_minutes if duration_minutes is None else duration_minutes
    check_duration(minutes)
    start = to_utc(new_local_start, ZoneInfo(series.timezone))
    end = start + dt.timedelta(minutes=minutes)
    if start <= now:
        raise InvalidSeries("a meeting can only be moved to a time still to come")
    if (start, end) == (row.starts_at, row.ends_at):
        return row
    _collides(session, series, row.original_start, start, end)
    row.starts_at, row.ends_at = start, end
    _tell(session, row, now)
    return row


def _meeting(session: Session, series_id: int, original_start: dt.datetime,
             now: dt.datetime) -> tuple[MeetingSeries, MeetingOccurrence]:
    """The series and the row of its meeting at `original_start` (made now if it has none), if that
    meeting is still to come."""
    from telline.voice.meetings import occurrence
    series = session.get(MeetingSeries, series_id)
    if series is None:
        raise InvalidSeries(f"there is no meeting series {series_id}")
    if original_start.tzinfo is None:
        raise InvalidSeries("give the meeting's start as an aware moment (UTC)")
    original_start = original_start.astimezone(dt.UTC)
    row = session.scalar(sa.select(MeetingOccurrence).where(MeetingOccurrence.series_id == series.id,
                                                            MeetingOccurrence.original_start == original_start))
    if row is None:
        if next_start(series, ZoneInfo(series.timezone), original_start) != original_start:
            raise InvalidSeries("the series has no meeting at that time")
        row = occurrence(session, series, original_start)
    if row.status in (OccurrenceStatus.LIVE, OccurrenceStatus.ENDED) or row.ends_at <= now:
        raise InvalidSeries("this meeting is on now or over: it can no longer be cancelled or moved")
    return series, row


def _collides(session: Session, series: MeetingSeries, original: dt.datetime, start: dt.datetime,
              end: dt.datetime) -> None:
    """A moved meeting may not overlap another of its series (their callers share the code)."""
    zone = ZoneInfo(series.timezone)
    day, length = dt.timedelta(days=1), dt.timedelta(minutes=series.duration_minutes)
    changed = changes(session, [series.id], start - 2 * day)[series.id]
    slots = [(s, s + length) for s in starts_from(series, zone, start - length - day, 400)
             if s < end + day and s not in changed and s != original]
    slots += [moved for key, moved in changed.items() if moved is not None and key != original]
    for other_start, other_end in slots:
        if other_start < end and start < other_end:
            raise InvalidSeries(f"it would overlap this series' meeting of "
                                f"{other_start.astimezone(zone):%a %Y-%m-%d %H:%M}")


def _tell(session: Session, row: MeetingOccurrence, now: dt.datetime) -> None:
    session.flush()
    change = "cancelled" if row.status == OccurrenceStatus.CANCELLED else f"{row.starts_at:%Y%m%dT%H%M%SZ}"
    enqueue_after_commit(session, send_notices, row.id, change, f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%S%fZ}",
                         queue="bulk")


@durable
def send_notices(occurrence_id: int, change: str, changed_at: str) -> int:
    """Text each active opted-in member of the group that its meeting was cancelled or moved, in
    their language and zone (the group's by default); the send path applies consent at send time,
    quiet hours and the line's rate (as for a broadcast). Safe to run again."""
    from telline.sms.batch import deliver_batch
    session = db.session()
    row = session.get(MeetingOccurrence, occurrence_id)
    if row is None:
        return 0
    now_change = "cancelled" if row.status == OccurrenceStatus.CANCELLED else f"{row.starts_at:%Y%m%dT%H%M%SZ}"
    if now_change != change:  # changed again since: that change's notice tells the latest
        return 0
    told = sa.select(Message.id).where(Message.idempotency_key.like(f"notice:{row.id}:%")).limit(1)
    if change != "cancelled" and row.starts_at == row.original_start and session.scalar(told) is None:
        return 0  # moved and moved back before anyone was told: nothing changed for members
    series = row.series
    group = session.get_one(Group, series.group_id)
    line = sender_line(session, group.id)
    if line is None:
        log.warning("meeting notice not sent: its group has no line", extra={"occurrence_id": row.id})
        return 0
    prefix = f"notice:{row.id}:{changed_at}:"
    done = set(session.scalars(sa.select(Message.member_id).where(Message.idempotency_key.like(f"{prefix}%"))))
    rows = []
    for member_id, number, language, zone in session.execute(
            recipients(session, group.id).add_columns(Member.language, Member.timezone)):
        if member_id in done:
            continue
        body = notice(row, group, language or group.language, zone or group.timezone)
        measured = segments.measure(body)
        rows.append(dict(direction="outbound", status="pending", line_id=line.id, member_id=member_id,
                         from_number=line.phone_number, to_number=number, body=body, kind="meeting_notice",
                         idempotency_key=f"{prefix}{member_id}", encoding=measured.encoding,
                         segments=measured.count))
    if rows:
        session.execute(sa.insert(Message), rows)
    pending = list(session.scalars(sa.select(Message.id).where(
        Message.idempotency_key.like(f"{prefix}%"), Message.status == "pending").order_by(Message.id)))
    size = batch_size(line.sms_rate, line.sms_rate_unit, 2)
    for i in range(0, len(pending), size):
        enqueue_after_commit(session, deliver_batch, pending[i:i + size], queue="bulk", retry=retry_policy(),
                             timeout=batch_timeout(size))
    session.commit()
    log.info("meeting notice fanned out", extra={"occurrence_id": row.id, "texts": len(pending)})
    return len(pending)


def notice(row: MeetingOccurrence, group: Group, language: str, zone: str) -> str:
    """The text a member reads: the meeting as the rule had it, and what became of it."""
    was = when(row.original_start, zone, language)
    if row.status == OccurrenceStatus.CANCELLED:
        return t("sms.meeting_cancelled", language, group=group.name, when=was)
    if row.starts_at == row.original_start:
        return t("sms.meeting_restored", language, group=group.name, when=was)
    return t("sms.meeting_moved", language, group=group.name, when=was, new=when(row.starts_at, zone, language))
