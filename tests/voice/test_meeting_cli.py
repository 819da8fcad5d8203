"""Scheduling and running meetings from the command line."""

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from telline.cli import cli
from telline.models import MeetingOccurrence, MeetingSeries


def run(runner, *args):
    return runner.invoke(cli, [str(a) for a in args])


def test_create_a_weekly_meeting_and_tune_it(runner, session, group, line):
    r = run(runner, "meeting", "create", group.id, "--line", "+1 500-555-0006", "--first", "2026-12-01 19:00",
            "--rrule", "FREQ=WEEKLY;BYDAY=TU", "--title", "Tuesday evening")
    assert r.exit_code == 0, r.output
    code, pin = re.fullmatch(r"meeting series \d+: access code (\d{7}), host PIN (\d{7})\n", r.output).groups()
    series = session.scalar(sa.select(MeetingSeries))
    assert (series.access_code, series.host_pin) == (code, pin) and code != pin
    assert series.first_start.hour == 19  # Europe/London in December: UTC+0
    r = run(runner, "meeting", "configure", series.id, "--max-participants", 12, "--caller-id-joins", "--record",
            "--join-early", 5, "--wait-url", "https://example.org/hold.mp3")
    assert r.exit_code == 0, r.output
    session.refresh(series)
    assert (series.max_participants, series.caller_id_joins, series.record, series.join_early_minutes) == \
        (12, True, True, 5)


def test_cancel_one_meeting(runner, session, group, line):
    run(runner, "meeting", "create", group.id, "--line", "+15005550006", "--first", "2026-12-01 19:00",
        "--rrule", "FREQ=WEEKLY;BYDAY=TU")
    series = session.scalar(sa.select(MeetingSeries))
    r = run(runner, "meeting", "cancel", series.id, "2026-12-08")
    assert r.exit_code == 0 and "cancelled" in r.output
    assert session.scalar(sa.select(MeetingOccurrence.status)) == "cancelled"
    assert run(runner, "meeting", "cancel", series.id, "2026-12-09").exit_code == 2  # a Wednesday


def test_move_one_meeting_and_its_refusals(runner, session, group, line):
    run(runner, "meeting", "create", group.id, "--line", "+15005550006", "--first", "2026-12-01 19:00",
        "--rrule", "FREQ=WEEKLY;BYDAY=TU", "--timezone", "America/New_York")
    series = session.scalar(sa.select(MeetingSeries))
    assert series.timezone == "America/New_York"
    r = run(runner, "meeting", "move", series.id, "2026-12-08", "2026-12-09 18:30", "--duration", "90")
    assert r.exit_code == 0 and "now at 2026-12-09 18:30" in r.output
    row = session.scalar(sa.select(MeetingOccurrence))
    assert (row.starts_at, row.ends_at) == (dt.datetime(2026, 12, 9, 23, 30, tzinfo=dt.UTC),
                                           dt.datetime(2026, 12, 10, 1, 0, tzinfo=dt.UTC))
    r = run(runner, "meeting", "move", series.id, "2026-12-15", "2026-12-09 18:45")
    assert r.exit_code == 2 and "it would overlap this series' meeting of Wed 2026-12-09 18:30" in r.output
    r = run(runner, "meeting", "move", series.id, "2026-12-15", "tomorrow")
    assert r.exit_code == 2 and "the new time looks like '2026-12-01 19:00'" in r.output


@pytest.mark.parametrize("args,message", [
    (["--first", "tomorrow"], "2026-12-01 19:00"),
    (["--first", "2026-12-01 19:00", "--rrule", "FREQ=SOMETIMES"], "DAILY, WEEKLY, MONTHLY or YEARLY, not SOMETIMES"),
    (["--first", "2026-12-01 19:00", "--duration", "1"], "between 5 minutes"),
])
def test_bad_schedules_are_explained_and_nothing_is_written(runner, session, group, line, args, message):
    r = run(runner, "meeting", "create", group.id, "--line", "+15005550006", *args)
    assert r.exit_code == 2 and message in r.output
    assert session.scalars(sa.select(MeetingSeries)).all() == []


def test_a_line_of_another_group_is_refused(runner, session, group, line):
    r = run(runner, "meeting", "create", group.id, "--line", "+15005550007", "--first", "2026-12-01 19:00")
    assert r.exit_code == 2 and "not one of this group's lines" in r.output


def test_bad_settings_are_refused(runner, session, group, line):
    run(runner, "meeting", "create", group.id, "--line", "+15005550006", "--first", "2026-12-01 19:00")
    series = session.scalar(sa.select(MeetingSeries))
    assert run(runner, "meeting", "configure", series.id, "--max-participants", 300).exit_code == 2
    assert run(runner, "meeting", "configure", series.id, "--wait-url", "ftp://x").exit_code == 2
    assert run(runner, "meeting", "configure", 9999, "--record").exit_code == 2


@pytest.mark.parametrize("first,rrule,says", [
    ("2025-01-07 19:00", "FREQ=WEEKLY;COUNT=3", "would never meet again"),
    ("2026-12-01 19:00", "FREQ=WEEKLY;INTERVAL=0", "INTERVAL is a whole number from 1"),
    ("2026-12-01 19:00", "FREQ=WEEKLY;COUNT=0", "COUNT is a whole number from 1"),
    ("2026-12-01 19:00", "FREQ=HOURLY", "DAILY, WEEKLY, MONTHLY or YEARLY, not HOURLY"),
    ("2026-12-01 19:00", "FREQ=MINUTELY", "not MINUTELY"),
    ("2026-12-01 19:00", "FREQ=SECONDLY", "not SECONDLY"),
    ("2026-12-01 19:00", "FREQ=WEEKLY;BYDAY=XX", "days are MO, TU, WE, TH, FR, SA, SU"),
])
def test_schedules_that_would_not_work_are_refused_with_one_sentence(runner, session, group, line, first, rrule,
                                                                      says):
    r = run(runner, "meeting", "create", group.id, "--line", "+15005550006", "--first", first, "--rrule", rrule)
    assert r.exit_code == 2 and says in r.output, r.output
    assert "invalid '" not in r.output
    assert session.scalars(sa.select(MeetingSeries)).all() == []


def test_a_utc_until_is_accepted(runner, session, group, line):
    r = run(runner, "meeting", "create", group.id, "--line", "+15005550006", "--first", "2027-01-05 19:00",
            "--rrule", "FREQ=WEEKLY;UNTIL=20270601T180000Z")
    assert r.exit_code == 0, r.output
    assert session.scalar(sa.select(MeetingSeries.rrule)) == "FREQ=WEEKLY;UNTIL=20270601T190000"  # London, BST


def test_two_series_at_the_same_time_on_one_line_get_a_warning(runner, session, group, line):
    first = run(runner, "meeting", "create", group.id, "--line", "+15005550006", "--first", "2027-01-05 19:00")
    assert first.exit_code == 0 and "warning" not in first.output
    r = run(runner, "meeting", "create", group.id, "--line", "+15005550006", "--first", "2027-01-05 19:30",
            "--rrule", "FREQ=DAILY", "--duration", "30")
    assert r.exit_code == 0, r.output
    first_id = session.scalar(sa.select(sa.func.min(MeetingSeries.id)))
    assert (f"warning: meeting series {first_id} meets on this line at the same time (first: Tue 2027-01-05 19:30"
            in r.stderr)
    assert len(session.scalars(sa.select(MeetingSeries)).all()) == 2


def test_configure_refuses_what_the_domain_refuses(runner, session, group, line):
    run(runner, "meeting", "create", group.id, "--line", "+15005550006", "--first", "2027-01-05 19:00")
    series = session.scalar(sa.select(MeetingSeries))
    r = run(runner, "meeting", "configure", series.id, "--join-early", 500)
    assert r.exit_code == 2 and "between 0 and 120 minutes" in r.output
    r = run(runner, "meeting", "configure", series.id, "--wait-url", "https://example.org/" + "a" * 500)
    assert r.exit_code == 2 and "at most 500 characters" in r.output
    session.refresh(series)
    assert (series.join_early_minutes, series.wait_url) == (10, None)


def test_quiet_hours_that_start_when_they_end_are_refused(runner, session, group):
    r = run(runner, "group", "configure", group.id, "--quiet-hours", "21:00-21:00")
    assert r.exit_code == 2 and "start and end at the same time" in r.output
