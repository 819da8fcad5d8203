"""Reminders of a series' meetings, as rows: planned ahead, claimed when due, fanned out once.

tick() (cron, every minute) does two things:
1. plan: for each series whose window moved — its reminders_planned_until (the first meeting not
   yet planned) has come within HORIZON, or is unset because the series or one of its meetings was
   edited (models._replan_edited_series clears it) — a `reminders` row per meeting starting within
   HORIZON and per offset (INSERT … ON CONFLICT DO NOTHING: a second tick adds nothing), following
   the meeting's occurrence row (cancelled: the row is cancelled; moved: it follows `starts_at`).
   Pending rows of a series deactivated, of an offset removed or of a meeting its rule no longer
   has are cancelled. A series whose window did not move is not read at all: the tick's cost
   follows what is due (series to plan, reminders to claim), never the rows stored.
2. claim: due pending rows (index (state, due_at)) go to "sending" by compare-and-set, each with a
   durable task (fan_out) in the same commit — so the database alone says what must happen: a
   "sending" row always has its Task row, which the sweeper sends again if its job is lost.

fan_out() takes the reminders one tick claimed and writes one text per active, opted-in member of
each (idempotency key reminder:<id>:<member>), each at its own moment (quiet_hours.last_moment_before
in the member's zone), their batch tasks — several lines in each batch, so one job sends on all of
them at once (telline.sms.batch.enqueue_by_line) — and the rows' "sent" state in ONE commit: a kill
before it leaves nothing written (rerun by the sweeper), a rerun after it finds the rows sent and
does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

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
from telline.sms import quiet_hours, rate, segments
from telline.sms.batch import enqueue_by_line
from telline.sms.broadcast import recipients, sender_line
from telline.tasks import durable, enqueue_after_commit
from telline.texts import t, when

log = logging.getLogger(__name__)

# Meetings planned this far ahead: the largest offset a series may have, and a day's margin.
HORIZON = dt.timedelta(minutes=MAX_REMINDER_MINUTES, days=1)
MEETINGS_PER_SERIES = 64  # within the horizon (a daily series: 15)
CLAIM_BATCH = 1000
FAN_OUT_TEXTS = 5000  # texts one fan_out job writes (one transaction: seconds of SQLite's write lock)
PLAN_BATCH = 500  # series planned per tick (a backlog, after a migration, takes a few ticks)
# reminders_planned_until of a series with no meeting left to plan (its rule has ended, or it stopped).
NEVER = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
# state = 'pending', written so that no planner reads it through ix_reminders_state_due_at: next to a
# series id or row ids, SQLite (without statistics) would take that index — every pending row
# stored — over the few rows the key finds. Only the claim's own query (due rows) is meant to use it.
NOT_CLAIMED = Reminder.state.not_in(("sending", "sent", "cancelled"))


def tick() -> dict[str, int]:
    """The cron job: plan, then claim what is due."""
    session = db.session()
    now = utcnow()
    planned = plan(session, now)
    claimed = claim_due(session, now)
    return {"planned": planned, "claimed": claimed}


def _zones(session: Session, group: Group) -> set[str]:
    """The time zones of a group's recipients (their texts' moments differ with quiet hours)."""
    return {group.timezone, *(z for z in session.scalars(sa.select(Member.timezone).distinct().where(
        Member.id.in_(sa.select(recipients(session, group.id).subquery().c.id)))) if z)}


def _due_at(group: Group, zones: set[str], start: dt.datetime, offset: int) -> dt.datetime:
    """The earliest moment any recipient's text of this reminder goes."""
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
    """Write the reminder rows of the series whose window moved (see reminders_planned_until);
    returns the rows added."""
    added = 0
    horizon = now + HORIZON
    for series in session.scalars(sa.select(MeetingSeries).where(sa.or_(
            MeetingSeries.reminders_planned_until.is_(None), MeetingSeries.reminders_planned_until <= horizon))
            .order_by(MeetingSeries.id).limit(PLAN_BATCH)):
        added += _plan_series(session, series, now, horizon)
    session.commit()
    return added


def _plan_series(session: Session, series: MeetingSeries, now: dt.datetime, horizon: dt.datetime) -> int:
    """Every meeting of the series from now to the horizon gets a row per offset, pending rows follow
    their meeting (moved, cancelled) or go (a meeting the rule no longer has, an offset removed, the
    series stopped); then reminders_planned_until moves to the first meeting left for a later tick."""
    pending = (Reminder.series_id == series.id) & NOT_CLAIMED
    offsets = stored_offsets(series) if series.active else []
    if offsets is None:
        return 0  # left unplanned (watermark unset): logged again next tick, until fixed
    starts = starts_from(series, ZoneInfo(series.timezone), now, MEETINGS_PER_SERIES + 1) if offsets else []
    planned = [s for s in starts[:MEETINGS_PER_SERIES] if s <= horizon]
    series.reminders_planned_until = starts[len(planned)] if len(starts) > len(planned) else NEVER
    # Rows no longer wanted: the series stopped, an offset removed, a meeting its rule has lost
    # (an edit from a date on cut the rule short: its continuation series reminds of those).
    session.execute(sa.update(Reminder).where(pending, sa.or_(
        Reminder.offset_minutes.not_in(offsets), (Reminder.original_start >= now)
        & Reminder.original_start.not_in(planned))).values(state="cancelled"))
    if not planned:
        return 0
    zones = _zones(session, series.group)
    moved = {o.original_start: o for o in session.scalars(sa.select(MeetingOccurrence).where(
        MeetingOccurrence.series_id == series.id, MeetingOccurrence.original_start.in_(planned)))}
    stored = {(r.original_start, r.offset_minutes): r for r in session.execute(sa.select(
        Reminder.id, Reminder.original_start, Reminder.offset_minutes, Reminder.starts_at, Reminder.due_at,
        Reminder.state).where(Reminder.series_id == series.id, Reminder.original_start.in_(planned)))}
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for original in planned:
        occurrence = moved.get(original)
        start = occurrence.starts_at if occurrence else original
        cancelled = occurrence is not None and occurrence.status == OccurrenceStatus.CANCELLED
        for offset in offsets:
            due = _due_at(series.group, zones, start, offset)
            state = "cancelled" if cancelled or start <= now else "pending"
            row = stored.get((original, offset))
            if row is None:
                new.append(dict(series_id=series.id, original_start=original, starts_at=start,
                                offset_minutes=offset, due_at=due, state=state))
            # A row not yet claimed that no longer matches its meeting follows it — a cancelled one
            # too, which comes back with its meeting (an offset put back, a zone changed back).
            elif row.state in ("pending", "cancelled") and (row.starts_at, row.due_at, row.state) != (
                    start, due, state):
                changed.append(dict(id=row.id, was=row.state, starts_at=start, due_at=due, state=state))
    if changed:  # compare-and-set: a row claimed since it was read is left to its fan_out
        session.execute(sa.update(Reminder).where(Reminder.state == sa.bindparam("was"))
                        .execution_options(synchronize_session=None), changed)
        for values in changed:  # a caller holding one of these rows reads it again
            held = session.identity_map.get(session.identity_key(Reminder, values["id"]))
            if held is not None:
                session.expire(held)
    if not new:
        return 0
    insert = db.insert_for(session.get_bind().dialect.name)
    return len(session.execute(insert(Reminder).values(new).on_conflict_do_nothing()
                               .returning(Reminder.id)).all())


def claim_due(session: Session, now: dt.datetime) -> int:
    """pending → sending for due rows, each with its fan_out task in the same commit."""
    due = list(session.scalars(sa.select(Reminder.id).where(Reminder.state == "pending", Reminder.due_at <= now)
                               .order_by(Reminder.due_at).limit(CLAIM_BATCH)))
    if not due:
        session.rollback()
        return 0
    claimed = list(session.scalars(sa.update(Reminder).where(Reminder.id.in_(due), NOT_CLAIMED)
                                   .values(state="sending").returning(Reminder.id)
                                   .execution_options(synchronize_session=False)))
    if claimed:  # one fan-out for them all: their texts' batches then span their lines (fan_out)
        enqueue_after_commit(session, fan_out, *claimed, queue="bulk")
    session.commit()
    return len(claimed)


@durable
def fan_out(*reminder_ids: int) -> int:
    """The texts of these reminders (claimed by one tick) and their batches, several lines in each
    (batch.enqueue_by_line: one job sends on all its lines at once), and each row to sent — in ONE
    commit. Safe to run again. Past FAN_OUT_TEXTS texts, the reminders left go to a fan_out of their
    own, in the same commit, so no transaction grows without bound; a reminder whose fan-out fails
    goes to one of its own too, and does not hold up the others."""
    session = db.session()
    now = utcnow()
    texts: dict[dt.datetime, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    per_second: dict[int, float] = {}
    written = 0
    for i, reminder_id in enumerate(reminder_ids):
        if written >= FAN_OUT_TEXTS:
            enqueue_after_commit(session, fan_out, *reminder_ids[i:], queue="bulk")
            break
        try:
            with session.begin_nested():
                line, line_rate, rows = _texts(session, reminder_id, now)
        except Exception:
            if len(reminder_ids) == 1:
                raise
            log.exception("reminder fan-out failed; it is tried again on its own", extra={"reminder_id": reminder_id})
            enqueue_after_commit(session, fan_out, reminder_id, queue="bulk")
            continue
        if not rows:
            continue
        for message_id, at in rows:
            texts[at or now][line].append(message_id)
        per_second[line] = min(per_second.get(line, line_rate), line_rate)
        written += len(rows)
    for at, by_line in sorted(texts.items()):
        enqueue_by_line(session, by_line, per_second, at=at)
    session.commit()  # texts, their tasks and the rows' states together: all or nothing
    return written


Texts = list[tuple[int, dt.datetime | None]]  # (message id, when it may go: None, now)


def _texts(session: Session, reminder_id: int, now: dt.datetime) -> tuple[int, float, Texts]:
    """Write one reminder's texts, one per recipient not texted yet, each at its own moment, and its
    row's new state: (its line, the line's texts per second, [(message id, when it may go)])."""
    reminder = session.get(Reminder, reminder_id, populate_existing=True)  # its state now, not as once read
    if reminder is None or reminder.state != "sending":
        return 0, 0.0, []
    series = session.get_one(MeetingSeries, reminder.series_id)
    occurrence = session.scalar(sa.select(MeetingOccurrence).where(
        MeetingOccurrence.series_id == series.id, MeetingOccurrence.original_start == reminder.original_start))
    if not series.active or (occurrence is not None and occurrence.status == OccurrenceStatus.CANCELLED) \
            or reminder.offset_minutes not in (stored_offsets(series) or ()):
        reminder.state = "cancelled"
        return 0, 0.0, []
    group = series.group
    start = occurrence.starts_at if occurrence is not None else reminder.starts_at
    if start != reminder.starts_at:  # moved since planned: re-timed, claimed again when due
        reminder.starts_at = start
        reminder.due_at = _due_at(group, _zones(session, group), start, reminder.offset_minutes)
        if reminder.due_at > now:
            reminder.state = "pending"
            return 0, 0.0, []
    if start <= now:  # too late to remind of it
        reminder.state = "cancelled"
        return 0, 0.0, []
    line = sender_line(session, group.id) or session.get_one(Line, series.line_id)
    number = phone.for_display(series.line.phone_number)
    members = {m.id: m for m in session.scalars(sa.select(Member).where(
        Member.id.in_(sa.select(recipients(session, group.id).subquery().c.id))))}
    keys = {f"reminder:{reminder.id}:{member_id}": member_id for member_id in members}
    done = set(session.scalars(sa.select(Message.member_id).where(
        Message.idempotency_key.in_(keys))))  # the key's unique index: a lookup a member, not a scan
    rows: list[dict[str, Any]] = []
    most = 1
    texts: dict[tuple[str, str], tuple[dt.datetime, str, segments.Segments]] = {}  # one a language and zone
    for member in members.values():
        if member.id in done:
            continue
        language, zone = member.language or group.language, member.timezone or group.timezone
        if (language, zone) not in texts:
            body = t("sms.series_reminder", language, group=group.name, when=when(start, zone, language),
                     number=number, code=series.access_code)
            texts[language, zone] = (quiet_hours.last_moment_before(
                start - dt.timedelta(minutes=reminder.offset_minutes), quiet_hours.zone(zone, None),
                group.quiet_start, group.quiet_end), body, segments.measure(body))
        at, body, measured = texts[language, zone]
        most = max(most, measured.count)
        rows.append(dict(direction="outbound", status="deferred" if at > now else "pending",
                         send_after=at if at > now else None, line_id=line.id, member_id=member.id,
                         from_number=line.phone_number, to_number=member.phone, body=body, kind="reminder",
                         idempotency_key=f"reminder:{reminder.id}:{member.id}", encoding=measured.encoding,
                         segments=measured.count))
    written = list(session.execute(sa.insert(Message).returning(Message.id, Message.send_after), rows)) if rows else []
    reminder.state, reminder.recipients = "sent", len(done) + len(rows)
    log.info("reminder fanned out", extra={"reminder_id": reminder.id, "recipients": reminder.recipients})
    return line.id, line.sms_rate / rate.cost(line.sms_rate_unit, most), [(r.id, r.send_after) for r in written]
