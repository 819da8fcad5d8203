import datetime as dt
import logging

import pytest
import sqlalchemy as sa

from telline.models import MeetingOccurrence, MeetingSeries, Message, OccurrenceStatus, Reminder
from telline.scheduling import reminders
from telline.scheduling.series import create_series
from tests.sms.conftest import add_member


def _series(session, group, line, first):
    series = create_series(session, group=group, line=line, title="Tuesday", first_start_local=first,
                           rrule="FREQ=WEEKLY")
    session.commit()
    return series


def test_planned_once_claimed_when_due_one_text_per_member_and_cancelled_meetings_get_none(app, session, group, line):
    add_member(session, group, "+447911123456", language="fr")
    add_member(session, group, "+447911123457", opted_in=False)
    now = dt.datetime.now(dt.UTC)
    first = (now + dt.timedelta(days=1, hours=1)).astimezone(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)
    series = _series(session, group, line, first)
    assert reminders.plan(session, now) > 0
    assert reminders.plan(session, now) == 0  # idempotent
    rows = session.scalars(sa.select(Reminder).where(Reminder.series_id == series.id)).all()
    assert {r.offset_minutes for r in rows} == {1440, 15}
    # jump to when the 24 h reminder of the first meeting is due
    assert reminders.claim_due(session, now + dt.timedelta(hours=1, minutes=1)) == 1
    reminder = session.scalar(sa.select(Reminder).where(Reminder.state == "sending"))
    reminders.fan_out(reminder.id)
    reminders.fan_out(reminder.id)  # a rerun sends nothing twice
    texts = session.scalars(sa.select(Message).where(Message.kind == "reminder")).all()
    assert len(texts) == 1 and texts[0].to_number == "+447911123456" and texts[0].body.startswith("Rappel")
    assert session.get(Reminder, reminder.id).state == "sent"
    # a cancelled meeting: its pending reminder is cancelled by the next tick
    other = session.scalar(sa.select(Reminder).where(Reminder.state == "pending").order_by(Reminder.due_at))
    session.add(MeetingOccurrence(series_id=series.id, original_start=other.original_start,
                                  starts_at=other.original_start, ends_at=other.original_start + dt.timedelta(hours=1),
                                  status=OccurrenceStatus.CANCELLED, conference_name="c-test-1"))
    session.commit()
    reminders.plan(session, now)
    assert session.get(Reminder, other.id).state == "cancelled"


def _first_meeting_in(hours: float) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    first = (now + dt.timedelta(hours=hours)).replace(tzinfo=None)
    return now, first


def _rows(session, series):
    session.expire_all()
    return session.scalars(sa.select(Reminder).where(Reminder.series_id == series.id)
                           .order_by(Reminder.original_start, Reminder.offset_minutes)).all()


def test_a_moved_meetings_reminders_follow_it_and_none_goes_at_the_old_time(app, session, group, line):
    from telline.scheduling.occurrences import move
    add_member(session, group, "+447911123456")
    now, first = _first_meeting_in(30)
    series = _series(session, group, line, first)
    reminders.plan(session, now)
    original = first.replace(tzinfo=dt.UTC)
    # Three hours later, in the series' zone (UTC here).
    move(session, series.id, original, first + dt.timedelta(hours=3), now=now)
    session.commit()
    reminders.plan(session, now)
    moved = [r for r in _rows(session, series) if r.original_start == original]
    later = original + dt.timedelta(hours=3)
    assert {(r.offset_minutes, r.starts_at, r.due_at, r.state) for r in moved} == {
        (1440, later, later - dt.timedelta(days=1), "pending"),
        (15, later, later - dt.timedelta(minutes=15), "pending")}
    # At the old 24 h moment nothing is due; at the new one, one text.
    assert reminders.claim_due(session, original - dt.timedelta(days=1) + dt.timedelta(minutes=1)) == 0
    assert reminders.claim_due(session, later - dt.timedelta(days=1) + dt.timedelta(minutes=1)) == 1
    [claimed] = session.scalars(sa.select(Reminder).where(Reminder.state == "sending")).all()
    assert claimed.original_start == original and claimed.offset_minutes == 1440


def test_a_deactivated_series_pending_reminders_are_cancelled_and_nothing_is_sent(app, session, group, line):
    add_member(session, group, "+447911123456")
    now, first = _first_meeting_in(2)
    series = _series(session, group, line, first)
    reminders.plan(session, now)
    # One reminder already claimed (its fan_out task still queued) when the series is stopped.
    assert reminders.claim_due(session, now + dt.timedelta(minutes=1)) == 1  # the 24 h one, overdue
    series.active = False
    session.commit()
    reminders.plan(session, now)
    rows = _rows(session, series)
    assert {r.state for r in rows if r.state != "sending"} == {"cancelled"}
    [sending] = [r for r in rows if r.state == "sending"]
    assert reminders.fan_out(sending.id) == 0
    assert session.get(Reminder, sending.id).state == "cancelled"
    assert session.scalars(sa.select(Message).where(Message.kind == "reminder")).all() == []


def test_an_offset_removed_cancels_its_pending_rows_and_one_added_is_planned(app, session, group, line):
    from telline.scheduling.series import update_series
    add_member(session, group, "+447911123456")
    now, first = _first_meeting_in(30)
    series = _series(session, group, line, first)
    reminders.plan(session, now)
    update_series(session, series.id, reminder_offsets=[15, 120])
    session.commit()
    assert reminders.plan(session, now) > 0
    states = {}
    for r in _rows(session, series):
        states.setdefault(r.offset_minutes, set()).add(r.state)
    assert states == {1440: {"cancelled"}, 120: {"pending"}, 15: {"pending"}}
    original = first.replace(tzinfo=dt.UTC)
    [added] = [r for r in _rows(session, series) if r.offset_minutes == 120 and r.original_start == original]
    assert added.due_at == original - dt.timedelta(hours=2)


@pytest.mark.parametrize("stored", [[0], [-5], "x", ["15"], [15, "x"], None, {"a": 1}])
def test_a_stored_broken_offset_list_is_logged_and_the_other_series_are_still_planned(
        app, session, group, line, caplog, stored):
    add_member(session, group, "+447911123456")
    now, first = _first_meeting_in(30)
    broken = _series(session, group, line, first)
    good = _series(session, group, line, first + dt.timedelta(hours=2))
    # Written behind the checks' back (an old import, a hand-edited row).
    session.execute(sa.update(MeetingSeries).where(MeetingSeries.id == broken.id).values(reminder_offsets=stored))
    session.commit()
    with caplog.at_level(logging.WARNING, logger="telline.scheduling.reminders"):
        assert reminders.tick()["planned"] > 0
    assert _rows(session, broken) == []
    assert {r.offset_minutes for r in _rows(session, good)} == {1440, 15}
    [record] = [r for r in caplog.records if "reminder offsets" in r.getMessage()]
    assert record.series_id == broken.id
    assert "+44" not in record.getMessage() and "7911123456" not in caplog.text
