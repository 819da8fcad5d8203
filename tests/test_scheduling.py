"""A series' next start: the remembered answer is always the rule's own."""

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from telline.scheduling.series import next_start

RULES = ["FREQ=DAILY", "FREQ=WEEKLY;BYDAY=TU,TH", "FREQ=MONTHLY;BYDAY=2TU", "FREQ=WEEKLY;INTERVAL=2",
         "FREQ=DAILY;COUNT=40", "FREQ=HOURLY;INTERVAL=7"]
ZONES = ["Europe/London", "America/New_York", "Australia/Lord_Howe"]  # DST; a half-hour DST
FIRST = dt.datetime(2024, 3, 1, 19, 0, tzinfo=dt.UTC)


@settings(max_examples=60, deadline=None)
@given(rule=st.sampled_from(RULES), zone=st.sampled_from(ZONES),
       afters=st.lists(st.integers(min_value=-3 * 24 * 60, max_value=400 * 24 * 60), min_size=1, max_size=30),
       sort=st.booleans())
def test_next_start_is_the_rules_answer_whatever_was_asked_before(rule, zone, afters, sort):
    series = SimpleNamespace(rrule=rule, first_start=FIRST)
    tz = ZoneInfo(zone)
    fresh = rrulestr(rule, dtstart=FIRST.astimezone(tz).replace(tzinfo=None))
    for minutes in (sorted(afters) if sort else afters):  # callers ask in time order; jobs in any
        after = FIRST + dt.timedelta(minutes=minutes)
        expected = fresh.after(after.astimezone(tz).replace(tzinfo=None), inc=True)
        got = next_start(series, tz, after)
        assert got == (expected.replace(tzinfo=tz).astimezone(dt.UTC) if expected else None)


def test_a_daily_series_years_old_is_answered_without_walking_its_years():
    import timeit
    series = SimpleNamespace(rrule="FREQ=DAILY", first_start=FIRST - dt.timedelta(days=3650))
    tz, now = ZoneInfo("Europe/London"), dt.datetime(2026, 11, 27, 19, 5, tzinfo=dt.UTC)
    start = next_start(series, tz, now - dt.timedelta(hours=1))
    assert start == dt.datetime(2026, 11, 27, 19, 0, tzinfo=dt.UTC)
    # what the join path asks during the hour the meeting runs (after = now - its length), in order
    later = [start - dt.timedelta(minutes=m) for m in range(60, -1, -1)]
    remembered = timeit.timeit(lambda: [next_start(series, tz, t) for t in later], number=3)
    walk = rrulestr("FREQ=DAILY", dtstart=series.first_start.astimezone(tz).replace(tzinfo=None), cache=True)
    walked = timeit.timeit(lambda: [walk.after(t.astimezone(tz).replace(tzinfo=None), inc=True) for t in later],
                           number=3)
    assert {next_start(series, tz, t) for t in later} == {start}
    assert remembered < walked / 5, (remembered, walked)  # ten years of days, walked once
