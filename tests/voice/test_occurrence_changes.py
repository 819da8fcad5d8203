"""Cancel or move one meeting: where callers get in, what NEXT says, what members are told."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from telline.models import MeetingOccurrence, Message, OccurrenceStatus, utcnow
from telline.scheduling.occurrences import cancel, move
from telline.scheduling.series import InvalidSeries, create_series, next_meeting, update_series
from telline.texts import when
from telline.voice.directory import directory
from tests.signing import post_signed
from tests.sms.conftest import add_member, run_jobs, texts_to
from tests.voice.conftest import LINE, call, conference, meeting, press, said

ANA, BEA, CHLOE = "+447911123456", "+447911123457", "+447911123458"
LONDON = ZoneInfo("Europe/London")


def local(moment):
    return moment.astimezone(LONDON).replace(tzinfo=None)


def on_now(session, line, moment):
    return [(s.id, start) for s, start in directory().by_id(session, line.id).on_now(moment)]


def test_a_moved_meeting_is_joined_at_its_new_time_and_not_at_the_old(client, session, group, line):
    series = meeting(session, group, line, starts_in_minutes=-5)  # on now, nobody in it yet
    old = series.first_start
    new = old + dt.timedelta(hours=3)
    row = move(session, series.id, old, local(new))
    session.commit()
    assert (row.original_start, row.starts_at, row.ends_at) == (old, new, new + dt.timedelta(hours=1))
    assert on_now(session, line, new + dt.timedelta(minutes=1)) == [(series.id, new)]
    assert on_now(session, line, new - dt.timedelta(minutes=10)) == [(series.id, new)]  # early join
    assert on_now(session, line, utcnow()) == []
    sid, root = call(client)  # at the old time: told where the meeting went
    assert said(root) == (f"There is no meeting right now. The next Carers meeting is on "
                          f"{when(new, group.timezone, 'en')}. To get a text reminder before it, press 1.")
    assert next_meeting(session, group, utcnow()) == (series, new)


def test_a_meeting_moved_to_now_lets_callers_in_with_its_code(client, session, group, line):
    series = meeting(session, group, line, starts_in_minutes=180)
    new = utcnow().replace(second=0, microsecond=0) + dt.timedelta(minutes=2)
    row = move(session, series.id, series.first_start, local(new), duration_minutes=30)
    session.commit()
    sid, _ = call(client)
    root = press(client, sid, series.access_code)
    assert conference(root).text == row.conference_name
    assert session.scalar(sa.select(sa.func.count()).select_from(MeetingOccurrence)) == 1


def test_moving_back_restores_the_meeting(session, group, line):
    series = meeting(session, group, line, starts_in_minutes=180)
    old = series.first_start
    move(session, series.id, old, local(old + dt.timedelta(hours=2)))
    row = move(session, series.id, old, local(old))
    session.commit()
    assert (row.starts_at, row.ends_at) == (old, old + dt.timedelta(hours=1))
    assert on_now(session, line, old + dt.timedelta(minutes=1)) == [(series.id, old)]


def test_the_agenda_shows_a_moved_meeting_where_it_is(session, group, line):
    from telline.scheduling.agenda import agenda
    series = meeting(session, group, line, starts_in_minutes=180)
    old = series.first_start
    move(session, series.id, old, local(old + dt.timedelta(hours=2)))
    session.commit()
    starts = [entry.starts_at for entry in agenda(session, utcnow(), series_id=series.id, upcoming=2).upcoming]
    assert starts == [old + dt.timedelta(hours=2), old + dt.timedelta(days=1)]


def test_next_texts_the_moved_meeting(app, client, session, group, line, standin):
    series = meeting(session, group, line, starts_in_minutes=180)
    add_member(session, group, ANA)
    new = series.first_start + dt.timedelta(hours=2)
    move(session, series.id, series.first_start, local(new))
    session.commit()
    run_jobs(app)
    before = len(texts_to(standin, ANA))
    post_signed(client, "/twilio/sms", {"MessageSid": "SM" + "7" * 32, "From": ANA, "To": LINE, "Body": "NEXT"})
    run_jobs(app)
    assert texts_to(standin, ANA)[before:] == [
        f"Next Carers meeting: {when(new, 'Europe/London', 'en')}. Call +1 500-555-0006 and enter code "
        f"{series.access_code} then #."]


# --- refusals, each its sentence ---------------------------------------------------------------
def refused(call_, *args, **kwargs) -> str:
    with pytest.raises(InvalidSeries) as caught:
        call_(*args, **kwargs)
    return str(caught.value)


def test_moves_and_cancels_that_are_refused(session, group, line):
    series = meeting(session, group, line, starts_in_minutes=180)
    first = series.first_start
    tomorrow = first + dt.timedelta(days=1)
    assert refused(move, session, series.id, first, local(tomorrow + dt.timedelta(minutes=30))) == (
        f"it would overlap this series' meeting of {local(tomorrow):%a %Y-%m-%d %H:%M}")
    assert refused(move, session, series.id, first, local(utcnow() - dt.timedelta(hours=1))) == (
        "a meeting can only be moved to a time still to come")
    assert refused(move, session, series.id, first + dt.timedelta(minutes=7), local(first)) == (
        "the series has no meeting at that time")
    assert refused(move, session, series.id, first, local(first).replace(tzinfo=LONDON)) == (
        "give the new start as local time, without a zone")
    assert refused(move, session, series.id, first, local(first), duration_minutes=2) == (
        "a meeting lasts between 5 minutes and 24 hours")
    assert refused(cancel, session, 9999, first) == "there is no meeting series 9999"
    cancel(session, series.id, first)
    assert refused(move, session, series.id, first, local(first + dt.timedelta(hours=2))) == (
        "this meeting is cancelled: it cannot be moved")
    session.commit()


def test_a_meeting_on_now_or_over_cannot_be_cancelled_or_moved(session, group, line):
    series = meeting(session, group, line, starts_in_minutes=-5)
    from telline.voice.meetings import occurrence
    row = occurrence(session, series, series.first_start)
    row.status = OccurrenceStatus.LIVE
    session.commit()
    said_ = "this meeting is on now or over: it can no longer be cancelled or moved"
    assert refused(cancel, session, series.id, series.first_start) == said_
    assert refused(move, session, series.id, series.first_start, local(utcnow() + dt.timedelta(hours=3))) == said_
    assert refused(cancel, session, series.id, series.first_start,
                   now=series.first_start + dt.timedelta(hours=2)) == said_


# --- notices ------------------------------------------------------------------------------------
def test_a_cancellation_is_texted_once_to_each_opted_in_member_in_their_language_and_zone(
        app, session, group, line, standin):
    series = meeting(session, group, line, starts_in_minutes=180)
    add_member(session, group, ANA)
    add_member(session, group, BEA, language="fr", tz="America/New_York")
    add_member(session, group, CHLOE, opted_in=False)
    session.commit()
    start = series.first_start
    cancel(session, series.id, start)
    session.commit()
    run_jobs(app)
    cancel(session, series.id, start)  # again: nothing changes, nobody is told twice
    session.commit()
    run_jobs(app)
    assert texts_to(standin, ANA) == [
        f"Carers: the meeting of {when(start, 'Europe/London', 'en')} is cancelled. Text NEXT for the next one."]
    assert texts_to(standin, BEA) == [
        f"Carers : la réunion du {when(start, 'America/New_York', 'fr')} est annulée. "
        "Envoyez PROCHAINE pour la suivante."]
    assert texts_to(standin, CHLOE) == []
    notices = session.scalars(sa.select(Message).where(Message.kind == "meeting_notice")).all()
    assert len(notices) == 2


def test_a_move_there_and_back_tells_each_change_once(app, session, group, line, standin):
    series = meeting(session, group, line, starts_in_minutes=180)
    add_member(session, group, ANA)
    session.commit()
    old = series.first_start
    new = old + dt.timedelta(hours=2)
    move(session, series.id, old, local(new))
    session.commit()
    run_jobs(app)
    move(session, series.id, old, local(new))  # where it is already: nothing to tell
    session.commit()
    run_jobs(app)
    move(session, series.id, old, local(old))
    session.commit()
    run_jobs(app)
    was = when(old, "Europe/London", "en")
    assert texts_to(standin, ANA) == [
        f"Carers: the meeting of {was} moves to {when(new, 'Europe/London', 'en')}. Same number and code.",
        f"Carers: the meeting of {was} is back at its usual time. Same number and code."]


def test_moved_and_back_before_anyone_was_told_tells_nobody(app, session, group, line, standin):
    series = meeting(session, group, line, starts_in_minutes=180)
    add_member(session, group, ANA)
    session.commit()
    old = series.first_start
    move(session, series.id, old, local(old + dt.timedelta(hours=2)))
    session.commit()
    move(session, series.id, old, local(old))
    session.commit()
    run_jobs(app)
    assert texts_to(standin, ANA) == []


def test_two_series_meet_at_once_on_one_line_with_their_own_codes(session, group, line):
    now = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    a = create_series(session, group=group, line=line, title="A", first_start_local=dt.datetime(2027, 2, 2, 19),
                      now=now)
    b = create_series(session, group=group, line=line, title="B", first_start_local=dt.datetime(2027, 2, 2, 19),
                      now=now)
    session.commit()
    assert len({a.access_code, a.host_pin, b.access_code, b.host_pin}) == 4
    assert refused(update_series, session, b.id, access_code=a.access_code) == (
        f"another meeting on this line uses {a.access_code}: choose another access code")
