"""Scheduling and running meetings from the command line."""

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


@pytest.mark.parametrize("args,message", [
    (["--first", "tomorrow"], "2026-12-01 19:00"),
    (["--first", "2026-12-01 19:00", "--rrule", "FREQ=SOMETIMES"], "not valid"),
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
