"""Coordinators and operators set a group's SMS rules and a line's throughput from the CLI."""

import datetime as dt

import pytest

from telline.cli import cli


def run(runner, *args):
    return runner.invoke(cli, [str(a) for a in args])


def test_configure_a_group(runner, session, group):
    r = run(runner, "group", "configure", group.id, "--text-code", "griev-01", "--quiet-hours", "22:30-07:00",
            "--no-confirm-join", "--crisis", "call 3114", "--contact", "Léa, 06 12 34 56 78")
    assert r.exit_code == 0, r.output
    assert "code GRIEV01, quiet hours 22:30-07:00, single opt-in" in r.output
    session.refresh(group)
    assert (group.text_code, group.quiet_start, group.quiet_end, group.join_needs_confirmation,
            group.crisis_resource) == ("GRIEV01", dt.time(22, 30), dt.time(7), False, "call 3114")


@pytest.mark.parametrize("args,message", [
    (["--text-code", "no"], "4 to 12 letters"),
    (["--quiet-hours", "late"], "21:00-08:00"),
    (["--quiet-hours", "25:00-08:00"], "21:00-08:00"),
])
def test_bad_group_settings_are_explained_and_change_nothing(runner, session, group, args, message):
    r = run(runner, "group", "configure", group.id, *args)
    assert r.exit_code == 2 and message in r.output
    session.refresh(group)
    assert (group.text_code, group.quiet_start) == ("CARE42", dt.time(0, 0))


def test_a_line_rate(runner, session, line):
    r = run(runner, "group", "line-rate", "+1 500 555 0006", "3", "--unit", "messages")
    assert r.exit_code == 0 and "at most 3 messages per second" in r.output
    session.refresh(line)
    assert (line.sms_rate, line.sms_rate_unit) == (3.0, "messages")


@pytest.mark.parametrize("number,rate,message", [("+15005550006", "0", "between 0.01 and 1000"),
                                                 ("+15005550007", "1", "No line has"),
                                                 ("12", "1", "no country code")])
def test_bad_line_rates(runner, session, line, number, rate, message):
    r = run(runner, "group", "line-rate", number, rate)
    assert r.exit_code == 2 and message in r.output
