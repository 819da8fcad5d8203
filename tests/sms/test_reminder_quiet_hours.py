import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from telline.sms.quiet_hours import last_moment_before, next_allowed

PARIS = ZoneInfo("Europe/Paris")
times = st.times().map(lambda t: t.replace(second=0, microsecond=0))
moments = st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2028, 1, 1),
                       timezones=st.just(dt.UTC))


def test_a_15_minute_reminder_of_a_0030_meeting_goes_at_2059_the_evening_before():
    due = dt.datetime(2026, 12, 3, 0, 15, tzinfo=PARIS)
    got = last_moment_before(due, PARIS, dt.time(21, 0), dt.time(8, 0)).astimezone(PARIS)
    assert got == dt.datetime(2026, 12, 2, 20, 59, tzinfo=PARIS)


def test_a_reminder_outside_quiet_hours_goes_at_its_time():
    due = dt.datetime(2026, 12, 2, 19, 0, tzinfo=PARIS) - dt.timedelta(hours=24)
    assert last_moment_before(due, PARIS, dt.time(21, 0), dt.time(8, 0)) == due


@given(moments, times, times)
def test_never_in_quiet_hours_never_later_never_earlier_than_needed(moment, start, end):
    got = last_moment_before(moment, PARIS, start, end)
    assert got <= moment
    if start != end and (end.hour, end.minute) != ((start.hour * 60 + start.minute + 1) // 60 % 24,
                                                    (start.minute + 1) % 60):
        assert next_allowed(got, PARIS, start, end) is None or got.astimezone(PARIS).fold  # DST fold edge
    if next_allowed(moment, PARIS, start, end) is None:
        assert got == moment
    else:  # every minute between it and the moment is quiet: nothing later was allowed
        probe = got + dt.timedelta(minutes=2)
        assert probe > moment or next_allowed(probe, PARIS, start, end) is not None
