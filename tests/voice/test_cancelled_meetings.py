"""A cancelled meeting is never "the next meeting": not on the phone, not for "press 1", not by NEXT."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from telline.models import Message, utcnow
from telline.scheduling.occurrences import cancel
from telline.scheduling.series import next_start
from telline.texts import when
from tests.signing import post_signed
from tests.sms.conftest import run_jobs, texts_to
from tests.voice.conftest import LINE, call, meeting, member, press, said

ANA = "+447911123456"
CANCELLED = pytest.mark.parametrize("cancelled", [1, 2], ids=["one cancelled", "two cancelled in a row"])


def cancel_meetings(session, group, series, count: int, *, from_: dt.datetime) -> dt.datetime:
    """Cancel the series' next `count` meetings from `from_` on; the start of the first one still held."""
    zone = ZoneInfo(group.timezone)
    start = next_start(series, zone, from_)
    for _ in range(count):
        cancel(session, series.id, start, now=start - dt.timedelta(days=1))
        start = next_start(series, zone, start + dt.timedelta(minutes=1))
    session.commit()
    return start


def said_when(group, start) -> str:
    return when(start, group.timezone, group.language)


@CANCELLED
def test_the_phone_announces_the_next_meeting_that_is_held(client, session, group, line, cancelled):
    series = meeting(session, group, line, starts_in_minutes=180)  # daily, next in three hours
    held = cancel_meetings(session, group, series, cancelled, from_=utcnow())
    _, root = call(client)
    assert said(root) == (f"There is no meeting right now. The next Carers meeting is on {said_when(group, held)}. "
                          "To get a text reminder before it, press 1.")


@CANCELLED
def test_press_1_sets_the_reminder_for_the_meeting_that_is_held(app, client, session, group, line, standin,
                                                                 cancelled):
    series = meeting(session, group, line, starts_in_minutes=180)
    held = cancel_meetings(session, group, series, cancelled, from_=utcnow())
    sid, _ = call(client)
    press(client, sid, "1", path="/twilio/voice/remind")
    run_jobs(app)
    assert texts_to(standin, ANA) == [
        f"We'll text you before the Carers meeting on {said_when(group, held)}. Text STOP to stop texts."]
    reminder = session.scalar(sa.select(Message).where(Message.kind == "reminder"))
    assert reminder.send_after == held - dt.timedelta(hours=2)
    assert reminder.body == (f"Reminder: Carers meets {said_when(group, held)}. Call +1 500-555-0006 and enter "
                             f"code {series.access_code} then #.")


@CANCELLED
def test_next_texts_the_meeting_that_is_held(app, client, session, group, line, standin, cancelled):
    series = meeting(session, group, line, starts_in_minutes=180)
    member(session, group, ANA, "Ana")
    held = cancel_meetings(session, group, series, cancelled, from_=utcnow())
    r = post_signed(client, "/twilio/sms", {"MessageSid": "SM" + "7" * 32, "From": ANA, "To": LINE, "Body": "NEXT"})
    assert r.status_code == 200
    run_jobs(app)
    assert texts_to(standin, ANA) == [f"Next Carers meeting: {said_when(group, held)}. Call +1 500-555-0006 and "
                                      f"enter code {series.access_code} then #."]


@CANCELLED
def test_a_caller_who_reaches_a_cancelled_meeting_hears_the_next_one_held(client, session, group, line, cancelled):
    series = meeting(session, group, line)  # on now, since five minutes
    held = cancel_meetings(session, group, series, cancelled, from_=utcnow() - dt.timedelta(hours=1))
    sid, _ = call(client)
    root = press(client, sid, series.access_code)
    assert said(root) == (f"There is no meeting right now. The next Carers meeting is on {said_when(group, held)}. "
                          "To get a text reminder before it, press 1.")


def test_a_group_whose_every_meeting_left_is_cancelled_has_none_planned(client, session, group, line):
    series = meeting(session, group, line, starts_in_minutes=180, rrule="FREQ=DAILY;COUNT=2")
    cancel_meetings(session, group, series, 2, from_=utcnow())
    _, root = call(client)
    assert "There is no meeting planned on this line right now." in said(root)
