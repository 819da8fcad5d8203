"""Issue 11's "done when", as far as the API of this change goes (members' import is another
change's): from the API alone, an admin makes a group, a line and a coordinator; the coordinator
schedules a weekly meeting across a daylight-saving change, cancels one, moves another, and the
calendar feed shows it all at the same local times."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Calendar

from telline import db
from telline.models import AuditEvent, Task


def test_admin_to_coordinator_to_meeting_to_calendar(api, world, client):
    admin = api(world.admin_token)
    group = admin.post("/groups", json={"name": "Parents", "timezone": "America/New_York", "region": "US"}).get_json()
    line = admin.post(f"/groups/{group['id']}/lines", json={"phone_number": "(212) 555-0142"}).get_json()
    assert line["phone_number"] == "+12125550142"
    dana = admin.post("/users", json={"email": "dana@example.org", "display_name": "Dana", "role": "coordinator",
                                      "password": "a long passphrase", "group_ids": [group["id"]]}).get_json()
    coordinator = api(admin.post(f"/users/{dana['id']}/tokens", json={"name": "console"}).get_json()["token"])

    # US daylight saving starts on 14 March 2027: Tuesdays at 19:00 stay at 19:00.
    series = coordinator.post(f"/groups/{group['id']}/series", json={
        "line_id": line["id"], "title": "Parents on Tuesdays", "first_start_local": "2027-03-02T19:00",
        "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=6"}).get_json()
    meetings = coordinator.get(f"/series/{series['id']}/occurrences?from=2027-03-01T00:00:00Z").get_json()["items"]
    assert [(m["local_start"][5:16], m["starts_at"][11:16]) for m in meetings] == [
        ("03-02T19:00", "00:00"), ("03-09T19:00", "00:00"), ("03-16T19:00", "23:00"), ("03-23T19:00", "23:00"),
        ("03-30T19:00", "23:00"), ("04-06T19:00", "23:00")]
    cancelled = coordinator.post(f"/series/{series['id']}/occurrences/cancel",
                                 json={"original_start": meetings[2]["original_start"]}).get_json()
    moved = coordinator.post(f"/series/{series['id']}/occurrences/move",
                             json={"original_start": meetings[3]["original_start"],
                                   "new_local_start": "2027-03-24T18:30"}).get_json()
    assert cancelled["status"] == "cancelled" and moved["local_start"] == "2027-03-24T18:30:00"
    # Members who opted in are told, once each change: the notice tasks are written with the change.
    session = db.session()
    assert sorted(t.args[0] for t in session.query(Task).filter(Task.func.like("%send_notices"))) == sorted(
        [cancelled["occurrence_id"], moved["occurrence_id"]])

    feed = coordinator.post(f"/groups/{group['id']}/calendar-feeds").get_json()
    ics = client.get(feed["url"][feed["url"].index("/calendar/"):])
    assert ics.status_code == 200
    calendar = Calendar.from_ical(ics.data)
    zone = ZoneInfo("America/New_York")
    events = recurring_ical_events.of(calendar).between(dt.datetime(2027, 3, 1, tzinfo=zone),
                                                        dt.datetime(2027, 4, 30, tzinfo=zone))
    local = sorted(e.start.astimezone(zone).strftime("%m-%d %H:%M") for e in events)
    assert local == ["03-02 19:00", "03-09 19:00", "03-24 18:30", "03-30 19:00", "04-06 19:00"]
    actions = [e.action for e in session.query(AuditEvent).filter_by(user_id=dana["id"]).order_by(AuditEvent.id)]
    assert actions == ["series.create", "occurrence.cancel", "occurrence.move", "calendar.create"]
