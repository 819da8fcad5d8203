"""Reminders of a series' meetings, as rows: planned ahead, claimed when due, fanned out once.

tick() (cron, every minute) does two things:
1. plan: for every active series, a `reminders` row per meeting starting within HORIZON and per
   offset (INSERT … ON CONFLICT DO NOTHING: a second tick adds nothing), following the meeting's
   occurrence row (cancelled: the row is cancelled; moved: it follows `starts_at`). Pending rows of
   a series deactivated, or of an offset removed, are cancelled. Its cost follows the number of
   active series and meetings within the horizon, never the rows stored.
2. claim: due pending rows (index (state, due_at)) go to "sending" by compare-and-set, each with a
   durable task (fan_out) in the same commit — so the database alone says what must happen: a
   "sending" row always has its Task row, which the sweeper sends again if its job is lost.

fan_out() writes one text per active, opted-in member (idempotency key reminder:<id>:<member>),
each at its own moment (quiet_hours.last_moment_before in the member's zone), their batch tasks,
and the row's "sent" state in ONE commit: a kill before it leaves nothing written (rerun by the
sweeper), a rerun after it finds the row sent and does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import db, phone
from telline.models import (
    Group,
    Line,
    MeetingOccurrence,
    MeetingSeries,
    Member,
    Message,
    OccurrenceStatus,
    Reminder,
    utcnow,
)
from telline.scheduling.series import MAX_REMINDER_MINUTES, MAX_REMINDERS, InvalidSeries, checked_offsets, starts_from
from telline.sms import quiet_hours, segments
from telline.sms.broadcast import batch_size, batch_timeout, recipients, sender_line
from telline.sms.outbound import retry_policy
from telline.tasks import durable, enqueue_after_commit
from telline.texts import t, when

log = logging.getLogger(__name__)

# Meetings planned this far ahead: the largest offset a series may have, and a day's margin.
HORIZON = dt.timedelta(minutes=MAX_REMINDER_MINUTES, days=1)
MEETINGS_PER_SERIES = 64  # within the horizon (a daily series: 15)
CLAIM_BATCH = 1000


def tick() -> dict[str, int]:
    """The cron job: plan, then claim what is due."""
    session = db.session()
    now = utcnow()
    planned = plan(session, now)
    claimed = claim_due(session, now)
    return {"planned": planned, "claimed": claimed}


def _due_at(session: Session, group: Group, start: dt.datetime, offset: int) -> dt.datetime:
    """The earliest moment any recipient's text of this reminder goes (their zones differ)."""
    zones = {group.timezone, *(z for z in session.scalars(sa.select(Member.timezone).distinct().where(
        Member.id.in_(sa.select(recipients(session, group.id).subquery().c.id)))) if z)}
    return min(quiet_hours.last_moment_before(start - dt.timedelta(minutes=offset), quiet_hours.zone(z, None),
                                              group.quiet_start, group.quiet_end) for z in zones)


def stored_offsets(series: MeetingSeries) -> list[int] | None:
    """The series' offsets, or None (logged) when the stored list is not one update_series() would
    have written (an old import, a hand-edited row): that series gets no new reminder, the tick goes
    on with the others. The log line names the series only: the offsets are no member's data, but
    the value is not echoed either, so nothing odd ends up in the logs."""
    value = series.reminder_offsets
    try:
        if not isinstance(value, list):
            raise InvalidSeries("the reminder offsets are not a list")
        return checked_offsets(value)
    except InvalidSeries:
        log.warning("series skipped: its stored reminder offsets are not valid (1 to %d minutes, at most "
                    "%d, each once); fix them in the series' settings", MAX_REMINDER_MINUTES, MAX_REMINDERS,
                    extra={"series_id": series.id})
        return None


def plan(session: Session, now: dt.datetime) -> int:
    """Materialise reminders for meetings within HORIZON; returns the rows added."""
    added = 0
    insert = db.insert_for(session.get_bind().dialect.name)
    for series in session.scalars(sa.select(MeetingSeries).where(MeetingSeries.active)):
        from zoneinfo import ZoneInfo
        offsets = stored_offsets(series)
        if offsets is None:
            continue
        starts = [s for s in starts_from(series, ZoneInfo(series.timezone), now, MEETINGS_PER_SERIES)
                  if s <= now + HORIZON]
        if not starts:
            continue
        moved = {o.original_start: o for o in session.scalars(sa.select(MeetingOccurrence).where(
            MeetingOccurrence.series_id == series.id, MeetingOccurrence.original_start.in_(starts)))}
        rows: list[dict[str, Any]] = []
        for original in starts:
            occurrence = moved.get(original)
            start = occurrence.starts_at if occurrence else original
            cancelled = occurrence is not None and occurrence.status == OccurrenceStatus.CANCELLED
            for offset in offsets:
                due = _due_at(session, series.group, start, offset)
                rows.append(dict(series_id=series.id, original_start=original, starts_at=start,
                                 offset_minutes=offset, due_at=due,
                                 state="cancelled" if cancelled or start <= now else "pending"))
                # A pending row that no longer matches its meeting follows it.
                session.execute(sa.update(Reminder).where(
                    Reminder.series_id == series.id, Reminder.original_start == original,
                    Reminder.offset_minutes == offset, Reminder.state == "pending",
                    sa.or_(Reminder.starts_at != start, sa.literal(cancelled)))
                    .values(starts_at=start, due_at=due, state="cancelled" if cancelled else "pending"))
        added += len(session.execute(insert(Reminder).values(rows).on_conflict_do_nothing()
                                     .returning(Reminder.id)).all())
        session.execute(sa.update(Reminder).where(
            Reminder.series_id == series.id, Reminder.state == "pending",
            Reminder.offset_minutes.not_in(offsets)).values(state="cancelled"))
    # A deactivated series' pending reminders go with it.
    session.execute(sa.update(Reminder).where(
        Reminder.state == "pending", Reminder.series_id.in_(
            sa.select(MeetingSeries.id).where(~MeetingSeries.active))).values(state="cancelled"))
    session.commit()
    return added


def claim_due(session: Session, now: dt.datetime) -> int:
    """pending → sending for due rows, each with its fan_out task in the same commit."""
    due = list(session.scalars(sa.select(Reminder.id).where(Reminder.state == "pending", Reminder.due_at <= now)
                               .order_by(Reminder.due_at).limit(CLAIM_BATCH)))
    if not due:
        session.rollback()
        return 0
    claimed = list(session.scalars(sa.update(Reminder).where(Reminder.id.in_(due), Reminder.state == "pending")
                                   .values(state="sending").returning(Reminder.id)
                                   .execution_options(synchronize_session=False)))
    for reminder_id in claimed:
        enqueue_after_commit(session, fan_out, reminder_id, queue="bulk")
    session.commit()
    return len(claimed)


@durable
def fan_out(reminder_id: int) -> int:
    """One text per recipient, each at its own moment; the row to sent. Safe to run again."""
    session = db.session()
    reminder = session.get(Reminder, reminder_id)
    if reminder is None or reminder.state != "sending":
        session.rollback()
        return 0
    series = session.get_one(MeetingSeries, reminder.series_id)
    now = utcnow()
    occurrence = session.scalar(sa.select(MeetingOccurrence).where(
        MeetingOccurrence.series_id == series.id, MeetingOccurrence.original_start == reminder.original_start))
    if not series.active or (occurrence is not None and occurrence.status == OccurrenceStatus.CANCELLED) \
            or reminder.offset_minutes not in (stored_offsets(series) or ()):
        reminder.state = "cancelled"
        session.commit()
        return 0
    group = series.group
    start = occurrence.starts_at if occurrence is not None else reminder.starts_at
    if start != reminder.starts_at:  # moved since planned: re-timed, claimed again when due
        reminder.starts_at, reminder.due_at = start, _due_at(session, group, start, reminder.offset_minutes)
        if reminder.due_at > now:
            reminder.state = "pending"
            session.commit()
            return 0
    if start <= now:  # too late to remind of it
        reminder.state = "cancelled"
        session.commit()
        return 0
    line = sender_line(session, group.id) or session.get_one(Line, series.line_id)
    number = phone.for_display(series.line.phone_number)
    members = {m.id: m for m in session.scalars(sa.select(Member).where(
        Member.id.in_(sa.select(recipients(session, group.id).subquery().c.id))))}
    done = set(session.scalars(sa.select(Message.member_id).where(
        Message.idempotency_key.like(f"reminder:{reminder.id}:%"))))
    rows: list[dict[str, Any]] = []
    for member in members.values():
        if member.id in done:
            continue
        language, zone = member.language or group.language, member.timezone or group.timezone
        at = quiet_hours.last_moment_before(start - dt.timedelta(minutes=reminder.offset_minutes),
                                            quiet_hours.zone(zone, None), group.quiet_start, group.quiet_end)
        body = t("sms.series_reminder", language, group=group.name, when=when(start, zone, language),
                 number=number, code=series.access_code)
        measured = segments.measure(body)
        rows.append(dict(direction="outbound", status="deferred" if at > now else "pending",
                         send_after=at if at > now else None, line_id=line.id, member_id=member.id,
                         from_number=line.phone_number, to_number=member.phone, body=body, kind="reminder",
                         idempotency_key=f"reminder:{reminder.id}:{member.id}", encoding=measured.encoding,
                         segments=measured.count))
    by_time: dict[dt.datetime, list[int]] = defaultdict(list)
    if rows:
        for message_id, send_after in session.execute(sa.insert(Message).returning(Message.id, Message.send_after),
                                                       rows):
            by_time[send_after or now].append(message_id)
    from telline.sms.batch import deliver_batch
    size = batch_size(line.sms_rate, line.sms_rate_unit, 2)
    for at, ids in sorted(by_time.items()):
        for i in range(0, len(ids), size):
            enqueue_after_commit(session, deliver_batch, sorted(ids[i:i + size]), queue="bulk", at=at,
                                 retry=retry_policy(), timeout=batch_timeout(size))
    reminder.state, reminder.recipients = "sent", len(done) + len(rows)
    session.commit()  # texts, their tasks and the row's state together: all or nothing
    log.info("reminder fanned out", extra={"reminder_id": reminder.id, "recipients": reminder.recipients})
    return len(rows)
