"""The calendar feed: what calendar apps read is telline's own schedule. Parsed back with
icalendar, expanded independently with recurring-ical-events (not dateutil), over a year that
crosses the DST changes in Europe/Paris and America/New_York."""

from __future__ import annotations

import datetime as dt
import json
import logging
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar

from telline.logs import JsonFormatter
from telline.models import Group, Line, MeetingOccurrence, MeetingSeries, Member, Membership, OccurrenceStatus
from telline.scheduling import calendar, calendar_feeds
from telline.scheduling.series import starts_from

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
PARIS, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")


@pytest.fixture
def group(session):
    group = Group(name="Aidants", language="fr", timezone="Europe/Paris", default_region="FR")
    session.add(group)
    session.flush()
    paris = Line(group_id=group.id, phone_number="+33123456789")
    us = Line(group_id=group.id, phone_number="+12025550143")
    session.add_all([paris, us])
    session.flush()
    member = Member(display_name="Séverine", phone="+33612345678")
    session.add(member)
    session.flush()
    session.add(Membership(member_id=member.id, group_id=group.id))
    # Tuesdays 19:00 in Paris (DST ends 25 Oct 2026, starts 28 Mar 2027), until the end of Oct 2027;
    # the first Monday of the month at 18:30 in New York (DST starts 14 Mar 2027, ends 7 Nov 2027).
    tuesday = MeetingSeries(group_id=group.id, line_id=paris.id, title="Mardi soir", timezone="Europe/Paris",
                            first_start=dt.datetime(2026, 9, 1, 19, 0, tzinfo=PARIS).astimezone(dt.UTC),
                            rrule="FREQ=WEEKLY;BYDAY=TU;UNTIL=20271031T235959", duration_minutes=90,
                            access_code="4071593", host_pin="8826104")
    monthly = MeetingSeries(group_id=group.id, line_id=us.id, title="", timezone="America/New_York",
                            first_start=dt.datetime(2026, 10, 5, 18, 30, tzinfo=NEW_YORK).astimezone(dt.UTC),
                            rrule="FREQ=MONTHLY;BYDAY=1MO", duration_minutes=60,
                            access_code="5190372", host_pin="6610847")
    gone = MeetingSeries(group_id=group.id, line_id=paris.id, title="Ancienne", timezone="Europe/Paris",
                         first_start=dt.datetime(2026, 9, 2, 10, 0, tzinfo=PARIS).astimezone(dt.UTC),
                         access_code="7310846", host_pin="2290475", active=False)
    session.add_all([tuesday, monthly, gone])
    session.flush()
    return group, tuesday, monthly


def occurrence(session, series, original, starts=None, status=OccurrenceStatus.SCHEDULED):
    starts = starts or original
    row = MeetingOccurrence(series_id=series.id, original_start=original, starts_at=starts,
                            ends_at=starts + dt.timedelta(minutes=series.duration_minutes), status=status,
                            conference_name=f"tl-test-{series.id}-{original:%Y%m%d%H%M}")
    session.add(row)
    session.flush()
    return row


def utc(local, zone):
    return local.replace(tzinfo=zone).astimezone(dt.UTC)


@pytest.fixture
def changed(session, group):
    """A cancelled Tuesday after Paris's DST change, a Tuesday moved to Wednesday across the next one,
    a cancelled and a moved first Monday in New York (the move to 20:00 on the day DST starts)."""
    _, tuesday, monthly = group
    occurrence(session, tuesday, utc(dt.datetime(2026, 11, 3, 19, 0), PARIS), status=OccurrenceStatus.CANCELLED)
    occurrence(session, tuesday, utc(dt.datetime(2027, 3, 30, 19, 0), PARIS),
               starts=utc(dt.datetime(2027, 3, 31, 18, 0), PARIS))
    occurrence(session, tuesday, utc(dt.datetime(2026, 12, 1, 19, 0), PARIS))  # a meeting held: no change
    occurrence(session, monthly, utc(dt.datetime(2027, 2, 1, 18, 30), NEW_YORK), status=OccurrenceStatus.CANCELLED)
    occurrence(session, monthly, utc(dt.datetime(2027, 3, 1, 18, 30), NEW_YORK),
               starts=utc(dt.datetime(2027, 3, 14, 20, 0), NEW_YORK))
    return group


def expected(session, series, start, end):
    """telline's own schedule: the rule's starts, less cancelled meetings, moved ones where they are now."""
    zone = ZoneInfo(series.timezone)
    rows = {row.original_start: row for row in session.query(MeetingOccurrence).filter_by(series_id=series.id)}
    found = set()
    for original in starts_from(series, zone, start - dt.timedelta(days=40), 200):
        row = rows.get(original)
        if row is not None and row.status == OccurrenceStatus.CANCELLED:
            continue
        at = row.starts_at if row is not None else original
        if start <= at < end:
            found.add(f"{at.astimezone(zone):%Y-%m-%d %H:%M %Z}")
    return found


def test_an_independent_expansion_gives_telline_s_local_times_across_dst(session, changed):
    group, tuesday, monthly = changed
    start, end = dt.datetime(2026, 9, 1, tzinfo=dt.UTC), dt.datetime(2027, 12, 31, tzinfo=dt.UTC)
    cal = Calendar.from_ical(calendar.feed(session, group.id, NOW))
    for series in (tuesday, monthly):
        uid = f"series-{series.id}@telline"
        events = [e for e in recurring_ical_events.of(cal).between(start, end) if str(e["UID"]) == uid]
        got = {f"{e.start.astimezone(ZoneInfo(series.timezone)):%Y-%m-%d %H:%M %Z}" for e in events}
        assert got == expected(session, series, start, end)
        assert len(got) > 10
    tuesdays = {e.start.strftime("%H:%M %Z") for e in recurring_ical_events.of(cal).between(start, end)
                if str(e["UID"]) == f"series-{tuesday.id}@telline"}
    assert tuesdays == {"19:00 CEST", "19:00 CET", "18:00 CEST"}  # the same wall time both sides; the move
    mondays = {e.start.strftime("%Y-%m-%d %H:%M %Z") for e in recurring_ical_events.of(cal).between(start, end)
               if str(e["UID"]) == f"series-{monthly.id}@telline"}
    assert "2027-02-01 18:30 EST" not in mondays and "2027-03-01 18:30 EST" not in mondays
    assert {"2027-01-04 18:30 EST", "2027-03-14 20:00 EDT", "2027-04-05 18:30 EDT"} <= mondays


def test_the_feed_reads_as_rfc_5545_says(session, changed):
    group, tuesday, monthly = changed
    cal = Calendar.from_ical(calendar.feed(session, group.id, NOW, domain="line.example.org"))
    assert str(cal["METHOD"]) == "PUBLISH" and "telline" in str(cal["PRODID"])
    assert str(cal["X-WR-CALNAME"]) == "Aidants"
    assert cal["REFRESH-INTERVAL"].dt == dt.timedelta(hours=1)
    events = cal.walk("VEVENT")
    masters = [e for e in events if "RECURRENCE-ID" not in e]
    assert sorted(str(e["UID"]) for e in masters) == [f"series-{tuesday.id}@line.example.org",
                                                     f"series-{monthly.id}@line.example.org"]  # not the inactive one
    paris = next(e for e in masters if str(e["UID"]).startswith(f"series-{tuesday.id}@"))
    assert paris["DTSTART"].params["TZID"] == "Europe/Paris"
    assert paris.start == dt.datetime(2026, 9, 1, 19, 0, tzinfo=PARIS)
    assert paris.end - paris.start == dt.timedelta(minutes=90)
    assert paris["RRULE"]["UNTIL"] == [dt.datetime(2027, 10, 31, 22, 59, 59, tzinfo=dt.UTC)]  # UTC beside a TZID
    assert str(paris["SUMMARY"]) == "Mardi soir"
    assert [d.dt for d in paris["EXDATE"].dts] == [dt.datetime(2026, 11, 3, 19, 0, tzinfo=PARIS)]
    us = next(e for e in masters if str(e["UID"]).startswith(f"series-{monthly.id}@"))
    assert str(us["SUMMARY"]) == "Aidants"  # no title: the group's name
    assert us["DTSTART"].params["TZID"] == "America/New_York"
    moved = [e for e in events if "RECURRENCE-ID" in e]
    assert {(str(e["UID"]), e["RECURRENCE-ID"].dt, e.start) for e in moved} == {
        (f"series-{tuesday.id}@line.example.org", dt.datetime(2027, 3, 30, 19, 0, tzinfo=PARIS),
         dt.datetime(2027, 3, 31, 18, 0, tzinfo=PARIS)),
        (f"series-{monthly.id}@line.example.org", dt.datetime(2027, 3, 1, 18, 30, tzinfo=NEW_YORK),
         dt.datetime(2027, 3, 14, 20, 0, tzinfo=NEW_YORK))}
    # a VTIMEZONE for each TZID, whose own offsets are zoneinfo's on every meeting day
    zones = {str(tz["TZID"]): tz for tz in cal.walk("VTIMEZONE")}
    assert set(zones) == {"Europe/Paris", "America/New_York"}
    for name, tz in zones.items():
        made = tz.to_tz()
        for day in range(0, 420, 3):
            moment = dt.datetime(2026, 9, 1, 12, 0) + dt.timedelta(days=day)
            assert moment.replace(tzinfo=made).utcoffset() == moment.replace(tzinfo=ZoneInfo(name)).utcoffset()


def test_the_description_has_the_number_and_code_and_nothing_private(session, changed):
    group, tuesday, monthly = changed
    body = calendar.feed(session, group.id, NOW)
    cal = Calendar.from_ical(body)
    paris = next(e for e in cal.walk("VEVENT") if str(e["UID"]) == f"series-{tuesday.id}@telline"
                 and "RECURRENCE-ID" not in e)
    assert str(paris["DESCRIPTION"]) == ("Pour participer, appelez le +33 1 23 45 67 89 et tapez le code de la "
                                         "réunion 4071593, puis la touche dièse (#).")
    assert str(paris["LOCATION"]) == "Par téléphone : +33 1 23 45 67 89"
    text = body.decode().replace("\r\n ", "")  # unfolded
    assert "+1 202-555-0143" in text and "5190372" in text
    for secret in ("8826104", "6610847", "Séverine", "612345678", "Ancienne"):
        assert secret not in text


def test_an_unknown_group_is_said(session):
    with pytest.raises(calendar.UnknownGroup, match="there is no group 999"):
        calendar.feed(session, 999, NOW)


def test_the_private_url_serves_the_feed_with_an_etag_and_stops_once_revoked(session, client, changed):
    group, tuesday, _ = changed
    feed, token = calendar_feeds.create_feed(session, group.id)
    session.commit()
    assert feed.token_hash != token and token not in feed.token_hash and len(token) >= 43
    response = client.get(f"/calendar/{token}.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("inline")
    assert response.headers["Cache-Control"].startswith("private")
    assert Calendar.from_ical(response.data).walk("VEVENT")
    tag = response.headers["ETag"]
    again = client.get(f"/calendar/{token}.ics", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b""
    # a change to the meetings changes the tag
    occurrence(session, tuesday, utc(dt.datetime(2027, 1, 5, 19, 0), PARIS), status=OccurrenceStatus.CANCELLED)
    session.commit()
    changed_response = client.get(f"/calendar/{token}.ics", headers={"If-None-Match": tag})
    assert changed_response.status_code == 200 and changed_response.headers["ETag"] != tag
    assert [f.id for f in calendar_feeds.current_feeds(session, group.id)] == [feed.id]
    calendar_feeds.revoke_feed(session, feed.id)
    session.commit()
    assert calendar_feeds.current_feeds(session, group.id) == []
    gone = client.get(f"/calendar/{token}.ics")
    unknown = client.get("/calendar/" + "x" * 43 + ".ics")
    assert gone.status_code == unknown.status_code == 404
    assert gone.data == unknown.data  # no hint which one existed


def test_bad_feed_ids_are_said(session):
    with pytest.raises(calendar_feeds.InvalidFeed, match="there is no group 999"):
        calendar_feeds.create_feed(session, 999)
    with pytest.raises(calendar_feeds.InvalidFeed, match="there is no calendar feed 999"):
        calendar_feeds.revoke_feed(session, 999)


def test_log_lines_never_hold_a_calendar_token():
    token = "Zq3x-7_abcDEFghiJKLmnoPQRstuVWXyz0123456789a"
    record = logging.LogRecord("werkzeug", logging.INFO, "", 0, f'"GET /calendar/{token}.ics HTTP/1.1" 200 -',
                               None, None)
    line = JsonFormatter().format(record)
    assert token not in line and "/calendar/•••.ics" in json.loads(line)["message"]


def test_gunicorn_s_access_log_masks_the_token():
    from types import SimpleNamespace

    from gunicorn.config import Config

    from telline.access_log import AccessLogger
    token = "Zq3x-7_abcDEFghiJKLmnoPQRstuVWXyz0123456789a"
    logger = AccessLogger(Config())
    req = SimpleNamespace(method="GET", path=f"/calendar/{token}.ics", query="", uri=f"/calendar/{token}.ics",
                          version=(1, 1), headers=[])
    resp = SimpleNamespace(status="200 OK", sent=10, headers=[], response_length=10)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/calendar/{token}.ics", "PATH_INFO": f"/calendar/{token}.ics",
               "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_REFERER": f"https://x.example/calendar/{token}.ics"}
    atoms = logger.atoms(resp, req, environ, dt.timedelta(seconds=0.01))
    assert token not in json.dumps(atoms, default=str)
    assert atoms["r"] == "GET /calendar/•••.ics HTTP/1.1"


def test_the_cli_prints_a_url_once_and_revokes_it(app, session, group, runner):
    from telline.cli import cli
    from tests.conftest import make_settings
    g, _, _ = group
    session.commit()
    settings = app.config["TELLINE"]
    app.config["TELLINE"] = make_settings(settings.database_url, settings.redis_url,
                                          public_url="https://line.example.org")
    try:
        made = runner.invoke(cli, ["calendar", "url", str(g.id)])
        assert made.exit_code == 0, made.output
        url = made.output.strip().split(": ", 1)[1]
        assert url.startswith("https://line.example.org/calendar/") and url.endswith(".ics")
        feed_id = int(made.output.split()[2].rstrip(":"))
        token = url.rsplit("/", 1)[1].removesuffix(".ics")
        assert calendar_feeds.group_of(session, token) == g.id
        listed = runner.invoke(cli, ["calendar", "list", str(g.id)])
        assert f"calendar feed {feed_id}," in listed.output and token not in listed.output
        revoked = runner.invoke(cli, ["calendar", "revoke", str(feed_id)])
        assert revoked.output.strip() == f"calendar feed {feed_id} revoked"
        assert calendar_feeds.group_of(session, token) is None
        bad = runner.invoke(cli, ["calendar", "revoke", "999"])
        assert bad.exit_code == 2 and "there is no calendar feed 999" in bad.output
    finally:
        app.config["TELLINE"] = settings


@pytest.mark.parametrize("zone,first,cancelled", [
    ("Europe/Paris", dt.datetime(2027, 3, 24, 2, 30), dt.datetime(2027, 3, 28, 2, 30)),  # 02:30 does not exist
    ("Europe/Paris", dt.datetime(2027, 10, 27, 2, 30), dt.datetime(2027, 10, 31, 2, 30)),  # 02:30 happens twice
    ("America/New_York", dt.datetime(2027, 3, 10, 2, 30), dt.datetime(2027, 3, 14, 2, 30)),
    ("America/New_York", dt.datetime(2027, 11, 3, 1, 30), dt.datetime(2027, 11, 7, 1, 30)),
])
def test_a_start_that_does_not_exist_or_exists_twice_reads_the_same_in_calendars(session, group, zone, first,
                                                                                 cancelled):
    g, tuesday, monthly = group
    tuesday.active = monthly.active = False
    tz = ZoneInfo(zone)
    nightly = MeetingSeries(group_id=g.id, line_id=tuesday.line_id, title="Nuit", timezone=zone,
                            first_start=utc(first, tz), rrule="FREQ=DAILY;COUNT=9", duration_minutes=30,
                            access_code="3958201", host_pin="1047736")
    session.add(nightly)
    session.flush()
    occurrence(session, nightly, utc(cancelled, tz), status=OccurrenceStatus.CANCELLED)
    occurrence(session, nightly, utc(cancelled + dt.timedelta(days=1), tz),
               starts=utc(cancelled + dt.timedelta(days=1, hours=20), tz))
    cal = Calendar.from_ical(calendar.feed(session, g.id, NOW))
    start, end = utc(first, tz) - dt.timedelta(days=1), utc(first, tz) + dt.timedelta(days=12)
    got = {f"{e.start.astimezone(tz):%Y-%m-%d %H:%M %Z}" for e in recurring_ical_events.of(cal).between(start, end)}
    assert got == expected(session, nightly, start, end)
    assert len(got) == 8  # nine, one cancelled
