"""Edit a series from a date on: past meetings stay, one access code for members."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from telline.models import MeetingOccurrence, MeetingSeries, Task
from telline.scheduling.edits import edit_from, hand_over_codes
from telline.scheduling.series import InvalidSeries, create_series, starts_from
from telline.voice.meetings import occurrence

UTC, LONDON = dt.UTC, ZoneInfo("Europe/London")


def tuesdays(session, group, line, now):
    series = create_series(session, group=group, line=line, title="Tuesdays", rrule="FREQ=WEEKLY",
                           first_start_local=dt.datetime(2027, 1, 5, 19), now=now, join_early_minutes=5)
    session.commit()
    return series


def test_from_a_date_on_the_continuation_meets_at_the_new_time_and_takes_the_code(app, session, group, line):
    now = dt.datetime(2027, 1, 13, 12, tzinfo=UTC)  # a week and a day after the first meeting
    old = tuesdays(session, group, line, dt.datetime(2027, 1, 1, tzinfo=UTC))
    met = occurrence(session, old, dt.datetime(2027, 1, 5, 19, tzinfo=UTC))  # attended once, kept there
    code, pin = old.access_code, old.host_pin
    new = edit_from(session, old.id, dt.date(2027, 2, 1), first_start_local=dt.datetime(2027, 2, 3, 18, 30),
                    rrule="FREQ=WEEKLY;BYDAY=WE", duration_minutes=90, now=now)
    session.commit()
    assert [s.astimezone(LONDON).replace(tzinfo=None) for s in starts_from(old, LONDON, now, 5)] == [
        dt.datetime(2027, 1, 19, 19), dt.datetime(2027, 1, 26, 19)]
    assert [s.astimezone(LONDON).replace(tzinfo=None) for s in starts_from(new, LONDON, now, 2)] == [
        dt.datetime(2027, 2, 3, 18, 30), dt.datetime(2027, 2, 10, 18, 30)]
    assert (new.title, new.duration_minutes, new.join_early_minutes) == ("Tuesdays", 90, 5)
    assert old.access_code == code and new.access_code not in (code, pin)  # until the hand-over
    assert session.get(MeetingOccurrence, met.id).series_id == old.id
    task = session.scalar(sa.select(Task).where(Task.func.like("%hand_over_codes")))
    assert task.due_at == dt.datetime(2027, 1, 26, 20, tzinfo=UTC)  # once the old part's last meeting is over
    with app.app_context():
        hand_over_codes(old.id, new.id)
        hand_over_codes(old.id, new.id)  # run twice: nothing more
    session.expire_all()
    old, new = session.get(MeetingSeries, old.id), session.get(MeetingSeries, new.id)
    assert (new.access_code, new.host_pin, old.active) == (code, pin, False)
    assert old.access_code not in (code, pin)


def test_edits_from_a_date_that_are_refused(session, group, line):
    now = dt.datetime(2027, 1, 13, 12, tzinfo=UTC)
    old = tuesdays(session, group, line, dt.datetime(2027, 1, 1, tzinfo=UTC))

    def said(**kwargs):
        with pytest.raises(InvalidSeries) as caught:
            edit_from(session, old.id, now=now, **kwargs)
        return str(caught.value)
    assert said(from_date=dt.date(2027, 1, 1)) == (
        "the date is before the series' first meeting: change the series itself instead")
    assert said(from_date=dt.date(2027, 1, 10)) == "the date must still be to come"
    assert said(from_date=dt.date(2027, 2, 1), first_start_local=dt.datetime(2027, 1, 30, 19)) == (
        "the first new meeting is on or after the date the change takes effect")
    occurrence(session, old, dt.datetime(2027, 2, 9, 19, tzinfo=UTC)).status = "cancelled"
    assert said(from_date=dt.date(2027, 2, 1)) == (
        "meetings of the series from that date on were moved or cancelled: restore them first "
        "(a new rule would leave them behind)")
