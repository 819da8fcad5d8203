import datetime as dt

import sqlalchemy as sa

from telline.models import MeetingOccurrence, Message, OccurrenceStatus, Reminder
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
