"""The tick's watermark (meeting_series.reminders_planned_until): a series is planned again only when
its window moved or it was edited; every edit re-plans it; no meeting is ever reminded of twice."""

import datetime as dt
from collections import Counter

import sqlalchemy as sa

from telline.models import MeetingSeries, Reminder
from telline.scheduling import reminders
from telline.scheduling.edits import edit_from
from telline.scheduling.occurrences import cancel, move
from telline.scheduling.series import create_series, update_series
from tests.sms.conftest import add_member

DAY = dt.timedelta(days=1)


def _setup(session, group, line, hours=30, rrule="FREQ=WEEKLY"):
    add_member(session, group, "+447911123456")
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    first = (now + dt.timedelta(hours=hours)).replace(tzinfo=None)
    series = create_series(session, group=group, line=line, title="Tuesday", first_start_local=first, rrule=rrule)
    session.commit()
    return now, first.replace(tzinfo=dt.UTC), series


def _rows(session, *series):
    session.expire_all()
    return session.scalars(sa.select(Reminder).where(Reminder.series_id.in_([s.id for s in series]))
                           .order_by(Reminder.original_start, Reminder.offset_minutes)).all()


def _pending(session, *series):
    return {(r.starts_at, r.offset_minutes, r.due_at) for r in _rows(session, *series) if r.state == "pending"}


def _watermark(session, series):
    session.expire_all()
    return session.get(MeetingSeries, series.id).reminders_planned_until


def _two_weeks(first):
    """(start, offset, due) of the first two weekly meetings' reminders, at their plain times."""
    return {(first + k * 7 * DAY, offset, first + k * 7 * DAY - dt.timedelta(minutes=offset))
            for k in range(2) for offset in (1440, 15)}


def _tamper(session, series):
    """Change the rows behind the tick's back (no ORM event): only a re-plan puts them right."""
    session.execute(sa.update(Reminder).where(Reminder.series_id == series.id, Reminder.state == "pending")
                    .values(due_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
    session.commit()


def test_the_watermark_is_the_first_meeting_left_unplanned_and_moves_only_when_it_comes_within_reach(
        app, session, group, line):
    now, first, series = _setup(session, group, line, hours=30)
    assert reminders.plan(session, now) == 4  # two weekly meetings within 15 days, two offsets each
    assert _watermark(session, series) == first + 14 * DAY
    _tamper(session, series)
    # A minute before the third meeting comes within the horizon, the series is not even read.
    before = first + 14 * DAY - reminders.HORIZON - dt.timedelta(minutes=1)
    assert reminders.plan(session, before) == 0
    assert {r.due_at.year for r in _rows(session, series) if r.state == "pending"} == {2000}
    # At that moment it is: the third meeting's two rows are added, the others put right.
    assert reminders.plan(session, before + dt.timedelta(minutes=1)) == 2
    assert _watermark(session, series) == first + 21 * DAY
    assert {(r.original_start, r.offset_minutes, r.due_at) for r in _rows(session, series)} == {
        (first + k * DAY * 7, offset, first + k * DAY * 7 - dt.timedelta(minutes=offset))
        for k in range(3) for offset in (1440, 15)}


def test_a_series_whose_rule_has_ended_is_not_planned_again(app, session, group, line):
    now, first, series = _setup(session, group, line, hours=30, rrule="FREQ=WEEKLY;COUNT=2")
    assert reminders.plan(session, now) == 4
    assert _watermark(session, series) == reminders.NEVER
    assert reminders.plan(session, now + 30 * DAY) == 0


def test_changed_offsets_re_plan_the_series_and_putting_one_back_brings_its_rows_back(app, session, group, line):
    now, first, series = _setup(session, group, line)
    reminders.plan(session, now)
    update_series(session, series.id, reminder_offsets=[15])
    session.commit()
    assert _watermark(session, series) is None
    reminders.plan(session, now)
    assert {r.offset_minutes for r in _rows(session, series) if r.state == "pending"} == {15}
    update_series(session, series.id, reminder_offsets=[15, 1440])
    session.commit()
    reminders.plan(session, now)
    assert _pending(session, series) == _two_weeks(first)
    assert len(_rows(session, series)) == 4  # the same rows, no second copy


def test_a_cancelled_and_a_moved_meeting_re_plan_their_series(app, session, group, line):
    now, first, series = _setup(session, group, line)
    reminders.plan(session, now)
    _tamper(session, series)
    cancel(session, series.id, first + 7 * DAY, now=now)
    session.commit()
    assert _watermark(session, series) is None
    reminders.plan(session, now)
    second = [r for r in _rows(session, series) if r.original_start == first + 7 * DAY]
    assert {r.state for r in second} == {"cancelled"}
    later = first + dt.timedelta(hours=2)
    move(session, series.id, first, later.replace(tzinfo=None), now=now)
    session.commit()
    reminders.plan(session, now)
    assert _pending(session, series) == {(later, 1440, later - DAY), (later, 15, later - dt.timedelta(minutes=15))}


def test_a_new_time_zone_re_plans_the_series(app, session, group, line):
    now, first, series = _setup(session, group, line)
    reminders.plan(session, now)
    _tamper(session, series)
    series.timezone = "America/New_York"  # the rule is now read in New York's wall-clock time
    session.commit()
    assert _watermark(session, series) is None
    reminders.plan(session, now)
    assert _pending(session, series) == _two_weeks(first)


def test_new_quiet_hours_re_plan_the_groups_series(app, session, group, line):
    now, first, series = _setup(session, group, line)
    reminders.plan(session, now)
    # Quiet from an hour before the meeting's time: its 15-minute reminder goes before they start.
    group.quiet_start = (first - dt.timedelta(hours=1)).time()
    group.quiet_end = (first + dt.timedelta(hours=1)).time()
    session.commit()
    assert _watermark(session, series) is None
    reminders.plan(session, now)
    [early] = [r for r in _rows(session, series) if r.original_start == first and r.offset_minutes == 15]
    assert early.due_at == first - dt.timedelta(hours=1, minutes=1)


def test_a_stopped_series_is_cancelled_and_comes_back_when_started_again(app, session, group, line):
    now, first, series = _setup(session, group, line)
    reminders.plan(session, now)
    series.active = False
    session.commit()
    reminders.plan(session, now)
    assert {r.state for r in _rows(session, series)} == {"cancelled"}
    assert _watermark(session, series) == reminders.NEVER
    series.active = True
    session.commit()
    reminders.plan(session, now)
    assert len(_pending(session, series)) == 4


def test_an_edit_from_a_date_on_reminds_of_each_meeting_once(app, session, group, line):
    """The old series' rule ends before the date; its continuation has the meetings from then on.
    Their rows must not both remind of the same meeting."""
    now, first, series = _setup(session, group, line, hours=30)
    reminders.plan(session, now)
    continuation = edit_from(session, series.id, (first + 7 * DAY).date(), now=now)
    session.commit()
    reminders.plan(session, now)
    meetings = Counter((r.starts_at, r.offset_minutes) for r in _rows(session, series, continuation)
                       if r.state == "pending")
    assert meetings == Counter({(first + k * 7 * DAY, offset): 1 for k in range(2) for offset in (1440, 15)})
    assert {r.original_start for r in _rows(session, series) if r.state == "pending"} == {first}
    # New rows of a later tick, as time goes on, land on the continuation only.
    reminders.plan(session, first + 14 * DAY - reminders.HORIZON)
    assert {r.series_id for r in _rows(session, series, continuation) if r.original_start == first + 14 * DAY} \
        == {continuation.id}
