"""A zone per series, the DST rule (RFC 5545 §3.3.5), and a series' fields with their refusals."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from telline.scheduling.series import InvalidSeries, create_series, starts_from, update_series
from telline.voice.directory import directory

UTC = dt.UTC
BEFORE = dt.datetime(2027, 1, 1, tzinfo=UTC)


def weekly(session, group, line, zone, first, **fields):
    series = create_series(session, group=group, line=line, title="Sunday", first_start_local=first,
                           rrule="FREQ=WEEKLY", duration_minutes=60, timezone=zone, now=BEFORE, **fields)
    session.commit()
    return series


# (zone, first local start, the change-day meeting in UTC, the week after in UTC)
CASES = {
    # 02:30 does not exist on 28 March 2027 in Paris (02:00 → 03:00): it moves forward by the gap, 03:30 CEST
    "Paris spring gap": ("Europe/Paris", dt.datetime(2027, 3, 21, 2, 30), dt.datetime(2027, 3, 28, 1, 30, tzinfo=UTC),
                         dt.datetime(2027, 4, 4, 0, 30, tzinfo=UTC)),
    # 02:30 exists twice on 31 October 2027 in Paris (03:00 → 02:00): the first, still summer time
    "Paris autumn twice": ("Europe/Paris", dt.datetime(2027, 10, 24, 2, 30),
                           dt.datetime(2027, 10, 31, 0, 30, tzinfo=UTC), dt.datetime(2027, 11, 7, 1, 30, tzinfo=UTC)),
    # New York: 02:30 on 14 March 2027 does not exist: 03:30 EDT
    "New York spring gap": ("America/New_York", dt.datetime(2027, 3, 7, 2, 30),
                            dt.datetime(2027, 3, 14, 7, 30, tzinfo=UTC), dt.datetime(2027, 3, 21, 6, 30, tzinfo=UTC)),
    # 01:30 on 7 November 2027 exists twice: the first, 01:30 EDT
    "New York autumn twice": ("America/New_York", dt.datetime(2027, 10, 31, 1, 30),
                              dt.datetime(2027, 11, 7, 5, 30, tzinfo=UTC),
                              dt.datetime(2027, 11, 14, 6, 30, tzinfo=UTC)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_change_day_meeting_follows_rfc_5545_and_the_next_keeps_its_wall_clock_time(session, group, line, case):
    zone, first, change_day, week_after = CASES[case]
    series = weekly(session, group, line, zone, first)  # the group is in London: the series' zone rules
    assert series.timezone == zone
    assert starts_from(series, ZoneInfo(zone), change_day - dt.timedelta(days=1), 2) == [change_day, week_after]
    assert week_after.astimezone(ZoneInfo(zone)).time() == first.time()


@pytest.mark.parametrize("case", list(CASES))
def test_a_caller_at_the_right_moment_of_a_change_day_gets_in(session, group, line, case):
    zone, first, change_day, _ = CASES[case]
    series = weekly(session, group, line, zone, first)
    info = directory().by_id(session, line.id)
    assert [(s.id, start) for s, start in info.on_now(change_day + dt.timedelta(minutes=5))] == [
        (series.id, change_day)]
    assert info.on_now(change_day - dt.timedelta(minutes=11)) == []  # 10 minutes early at most
    assert info.on_now(change_day + dt.timedelta(minutes=60)) == []  # over


def test_the_series_zone_defaults_to_the_groups(session, group, line):
    series = create_series(session, group=group, line=line, title="T", first_start_local=dt.datetime(2027, 2, 2, 19),
                           now=BEFORE)
    assert series.timezone == "Europe/London" and series.first_start == dt.datetime(2027, 2, 2, 19, tzinfo=UTC)
    assert series.reminder_offsets == [1440, 15]


def test_rules_coordinators_ask_for(session, group, line):
    def starts(rrule, first):
        s = create_series(session, group=group, line=line, title="T", first_start_local=first, rrule=rrule, now=BEFORE)
        return [x.astimezone(ZoneInfo("Europe/London")).replace(tzinfo=None)
                for x in starts_from(s, ZoneInfo("Europe/London"), BEFORE, 5)]
    assert starts("FREQ=WEEKLY;INTERVAL=2", dt.datetime(2027, 2, 2, 19))[:3] == [
        dt.datetime(2027, 2, 2, 19), dt.datetime(2027, 2, 16, 19), dt.datetime(2027, 3, 2, 19)]
    assert starts("FREQ=MONTHLY;BYDAY=1MO;COUNT=3", dt.datetime(2027, 2, 1, 19)) == [
        dt.datetime(2027, 2, 1, 19), dt.datetime(2027, 3, 1, 19), dt.datetime(2027, 4, 5, 19)]
    assert starts("FREQ=WEEKLY;UNTIL=20270216", dt.datetime(2027, 2, 2, 19)) == [
        dt.datetime(2027, 2, 2, 19), dt.datetime(2027, 2, 9, 19), dt.datetime(2027, 2, 16, 19)]


def test_chosen_codes_reminders_and_host(session, group, line):
    series = create_series(session, group=group, line=line, title="T", first_start_local=dt.datetime(2027, 2, 2, 19),
                           access_code="246813", host_pin="97531", reminder_offsets=[15, 60 * 48],
                           join_early_minutes=5, now=BEFORE)
    session.commit()
    assert (series.access_code, series.host_pin, series.reminder_offsets, series.join_early_minutes) == (
        "246813", "97531", [2880, 15], 5)
    update_series(session, series.id, title="Tuesday group", reminder_offsets=[30], access_code="1357913")
    assert (series.title, series.reminder_offsets, series.access_code) == ("Tuesday group", [30], "1357913")


def refused(**fields) -> str:
    with pytest.raises(InvalidSeries) as caught:
        fields["create"](**{k: v for k, v in fields.items() if k != "create"})
    return str(caught.value)


BAD = [
    (dict(timezone="Mars/Olympus"), "'Mars/Olympus' is not a time zone: give an IANA name such as Europe/Paris"),
    (dict(access_code="12a456"), "the access code is 4 to 12 digits"),
    (dict(access_code="123"), "the access code is 4 to 12 digits"),
    (dict(host_pin="1234567890123"), "the host PIN is 4 to 12 digits"),
    (dict(access_code="55555", host_pin="55555"), "the access code and the host PIN must differ"),
    (dict(reminder_offsets=[15, 15]), "each reminder offset is given once"),
    (dict(reminder_offsets=[0]), "a reminder goes 1 minute to 14 days (20160 minutes) before the meeting, not 0"),
    (dict(reminder_offsets=[30000]),
     "a reminder goes 1 minute to 14 days (20160 minutes) before the meeting, not 30000"),
    (dict(reminder_offsets=[1, 2, 3, 4, 5, 6]), "a series has at most 5 reminders"),
    (dict(join_early_minutes=500), "callers may join between 0 and 120 minutes before the start"),
    (dict(rrule="FREQ=MONTHLY;BYDAY=1XX"), "BYDAY=1XX is not valid: days are MO, TU, WE, TH, FR, SA, SU, each with an "
                                           "optional number (2TU: the second Tuesday, -1FR: the last Friday)"),
]


@pytest.mark.parametrize(("fields", "sentence"), BAD, ids=[s for _, s in BAD])
def test_bad_fields_are_refused_with_a_sentence_and_nothing_is_made(session, group, line, fields, sentence):
    from telline.models import MeetingSeries
    assert refused(create=create_series, session=session, group=group, line=line, title="T",
                   first_start_local=dt.datetime(2027, 2, 2, 19), now=BEFORE, **fields) == sentence
    assert session.query(MeetingSeries).count() == 0


def test_a_code_another_series_uses_is_refused(session, group, line):
    other = create_series(session, group=group, line=line, title="A", first_start_local=dt.datetime(2027, 2, 2, 19),
                          now=BEFORE)
    session.commit()
    for code in (other.access_code, other.host_pin):
        with pytest.raises(InvalidSeries) as caught:
            create_series(session, group=group, line=line, title="B", first_start_local=dt.datetime(2027, 2, 3, 19),
                          access_code=code, now=BEFORE)
        assert str(caught.value) == f"another meeting on this line uses {code}: choose another access code"
