"""What makes a meeting series: the domain refuses, in one plain sentence, what would never work
(the CLI today, the JSON API later), and accepts what RFC 5545 allows."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from telline import groups
from telline.models import Group, Line, MeetingSeries
from telline.scheduling.series import InvalidSeries, configure_series, create_series, next_start, overlapping

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
FIRST = dt.datetime(2026, 12, 1, 19, 0)  # a Tuesday, the group's wall-clock time


@pytest.fixture
def paris(session):
    group = Group(name="Aidants", language="fr", timezone="Europe/Paris", default_region="FR")
    session.add(group)
    session.flush()
    line = Line(group_id=group.id, phone_number="+33123456789")
    session.add(line)
    session.commit()
    return group, line


def make(session, paris, rrule="FREQ=WEEKLY", first=FIRST, **options):
    group, line = paris
    series = create_series(session, group=group, line=line, title="Mardi", first_start_local=first, rrule=rrule,
                           now=NOW, **options)
    session.commit()
    return series


@pytest.mark.parametrize("rrule,first,says", [
    ("FREQ=WEEKLY;COUNT=3", dt.datetime(2025, 1, 7, 19, 0),
     "its last meeting was Tue 2025-01-21 19:00: the series would never meet again"),
    ("FREQ=WEEKLY;UNTIL=20250301", dt.datetime(2025, 1, 7, 19, 0), "would never meet again"),
    ("FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2", FIRST, "gives no meeting at all"),
    ("FREQ=WEEKLY;INTERVAL=0", FIRST, "INTERVAL is a whole number from 1"),
    ("FREQ=WEEKLY;INTERVAL=-2", FIRST, "INTERVAL is a whole number from 1"),
    ("FREQ=WEEKLY;COUNT=0", FIRST, "COUNT is a whole number from 1"),
    ("FREQ=MINUTELY", FIRST, "meetings repeat DAILY, WEEKLY, MONTHLY or YEARLY, not MINUTELY"),
    ("FREQ=HOURLY", FIRST, "not HOURLY"),
    ("FREQ=SECONDLY", FIRST, "not SECONDLY"),
    ("FREQ=SOMETIMES", FIRST, "not SOMETIMES"),
    ("BYDAY=TU", FIRST, "the rule needs FREQ"),
    ("FREQ=WEEKLY;;BYDAY=TU", FIRST, "each part of the rule looks like NAME=VALUE"),
    ("FREQ=WEEKLY;BYDAY=XX", FIRST, "BYDAY=XX is not valid: days are MO, TU, WE, TH, FR, SA, SU"),
    ("FREQ=WEEKLY;COUNT=x", FIRST, "COUNT is a whole number from 1"),
    ("FREQ=DAILY;BYHOUR=25", FIRST, "BYHOUR=25 is not valid: hours are 0 to 23"),
    ("FREQ=MONTHLY;BYMONTHDAY=40", FIRST, "gives no meeting at all"),
    ("FREQ=WEEKLY;FOO=1", FIRST, "FOO is not part of a recurrence rule"),
    ("FREQ=WEEKLY;COUNT=3;UNTIL=20270101", FIRST, "COUNT or UNTIL, not both"),
    ("FREQ=DAILY;BYHOUR=9,10", FIRST, "overlap"),
    ("FREQ=WEEKLY\nRRULE:FREQ=DAILY", FIRST, "one rule"),
])
def test_a_rule_that_cannot_work_is_refused_in_plain_words(session, paris, rrule, first, says):
    with pytest.raises(InvalidSeries) as refused:
        make(session, paris, rrule, first, duration_minutes=90)
    message = str(refused.value)
    assert says in message
    for internals in ("invalid '", "unknown parameter", "unpack", "positional argument", "dtstart"):
        assert internals not in message
    assert session.scalars(sa.select(MeetingSeries)).all() == []


def test_a_utc_until_is_read_in_the_groups_time(session, paris):
    """RFC 5545: with a floating DTSTART (ours: the group's wall clock), UNTIL is local time too.
    20261215T180000Z is 19:00 in Paris: the meeting of 15 December is the last."""
    series = make(session, paris, "freq=weekly;until=20261215T180000Z")
    assert series.rrule == "FREQ=WEEKLY;UNTIL=20261215T190000"
    zone = ZoneInfo("Europe/Paris")
    last = next_start(series, zone, NOW + dt.timedelta(days=12))
    assert last == dt.datetime(2026, 12, 15, 18, 0, tzinfo=dt.UTC)
    assert next_start(series, zone, last + dt.timedelta(minutes=1)) is None


def test_an_until_date_includes_that_day(session, paris):
    series = make(session, paris, "FREQ=WEEKLY;UNTIL=20261215")
    assert series.rrule == "FREQ=WEEKLY;UNTIL=20261215T235959"


def test_two_series_at_the_same_time_on_one_line_are_allowed_and_found(session, paris):
    tuesday = make(session, paris, "FREQ=WEEKLY;BYDAY=TU")
    other = make(session, paris, "FREQ=DAILY", first=dt.datetime(2026, 12, 3, 19, 30), duration_minutes=30)
    assert [(s.id, when) for s, when in overlapping(session, other, NOW)] == [
        (tuesday.id, dt.datetime(2026, 12, 8, 18, 30, tzinfo=dt.UTC))]
    assert overlapping(session, make(session, paris, "FREQ=WEEKLY", first=dt.datetime(2026, 12, 2, 8, 0)), NOW) == []


@pytest.mark.parametrize("changes,says", [
    ({"join_early_minutes": 121}, "between 0 and 120 minutes"),
    ({"join_early_minutes": -1}, "between 0 and 120 minutes"),
    ({"max_participants": 1}, "between 2 and 250"),
    ({"max_participants": 251}, "between 2 and 250"),
    ({"wait_url": "ftp://example.org/hold.mp3"}, "http(s) URL"),
    ({"wait_url": "https://"}, "http(s) URL"),
    ({"wait_url": "https://example.org/" + "a" * 500}, "at most 500 characters"),
])
def test_bridge_settings_are_checked_by_configure_and_create_alike(session, paris, changes, says):
    series = make(session, paris)
    with pytest.raises(InvalidSeries, match=says.replace("(", r"\(").replace(")", r"\)")):
        configure_series(session, series.id, **changes)
    session.rollback()
    with pytest.raises(InvalidSeries, match=says.replace("(", r"\(").replace(")", r"\)")):
        make(session, paris, **changes)


def test_configure_changes_what_it_is_given_and_nothing_else(session, paris):
    series = make(session, paris, max_participants=12)
    configure_series(session, series.id, join_early_minutes=5, record=True, wait_url="")
    session.commit()
    session.refresh(series)
    assert (series.join_early_minutes, series.record, series.wait_url, series.max_participants) == (5, True, None, 12)
    with pytest.raises(InvalidSeries, match="there is no meeting series 999"):
        configure_series(session, 999, record=True)


@pytest.mark.parametrize("text", ["21:00-21:00", "00:00-00:00", "8:00-08:00"])
def test_quiet_hours_that_start_when_they_end_are_refused(text):
    with pytest.raises(groups.InvalidGroup, match="start and end at the same time"):
        groups.parse_quiet_hours(text)
    assert groups.parse_quiet_hours("none") == (dt.time(0), dt.time(0))
