"""/series and their occurrences through the API: the same services and sentences as the CLI,
daylight saving, cancel and move with the members' notice, attendance, the audit rows."""

from __future__ import annotations

import datetime as dt

from telline.models import AuditEvent, ConferenceParticipant, MeetingSeries, Task

from .test_foundation import assert_error

WEEKLY = {"title": "Tuesday evening", "first_start_local": "2027-03-16T19:00", "rrule": "FREQ=WEEKLY;BYDAY=TU",
          "duration_minutes": 90}


def make_series(api, world, **changes):
    response = api(world.ana_token).post(f"/groups/{world.mine.id}/series",
                                         json={"line_id": world.line.id, **WEEKLY, **changes})
    assert response.status_code == 201, response.data
    return response.get_json()


def test_a_weekly_meeting_keeps_its_local_time_across_the_dst_change(api, world):
    series = make_series(api, world)
    assert series["timezone"] == "Europe/London" and series["first_start_local"] == "2027-03-16T19:00:00"
    assert len(series["access_code"]) == 7 and series["reminder_offsets"] == [1440, 15]
    page = api(world.ana_token).get(f"/series/{series['id']}/occurrences?from=2027-03-15T00:00:00Z"
                                    "&to=2027-04-07T00:00:00Z").get_json()
    assert [o["local_start"] for o in page["items"]] == ["2027-03-16T19:00:00", "2027-03-23T19:00:00",
                                                         "2027-03-30T19:00:00", "2027-04-06T19:00:00"]
    # British Summer Time from 28 March: the same 19:00 is an hour earlier in UTC.
    assert [o["starts_at"][11:16] for o in page["items"]] == ["19:00", "19:00", "18:00", "18:00"]
    assert all(o["status"] == "scheduled" and o["occurrence_id"] is None for o in page["items"])


def test_occurrences_page_by_cursor_without_gaps_or_repeats(api, world):
    a = make_series(api, world)
    make_series(api, world, title="Thursday", rrule="FREQ=WEEKLY;BYDAY=TH")
    ana, seen, after = api(world.ana_token), [], None
    while len(seen) < 9:
        query = f"/groups/{world.mine.id}/occurrences?from=2027-03-15T00:00:00Z&limit=2"
        page = ana.get(query + (f"&after={after}" if after else "")).get_json()
        seen += [(o["starts_at"], o["series_id"]) for o in page["items"]]
        after = page["next"]
        assert after
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[0][1] == a["id"] and seen[0][0].startswith("2027-03-16T19:00")
    assert [s[0][:10] for s in seen[:4]] == ["2027-03-16", "2027-03-18", "2027-03-23", "2027-03-25"]
    bad = ana.get(f"/groups/{world.mine.id}/occurrences?after=yesterday")
    assert assert_error(bad, 422, "invalid")["fields"] == {"after": ["not a cursor"]}
    backwards = ana.get(f"/groups/{world.mine.id}/occurrences?from=2027-03-15T00:00:00Z&to=2027-03-01T00:00:00Z")
    assert_error(backwards, 422, "invalid")


def test_cancel_and_move_tell_members_and_are_audited_in_the_same_commit(api, world, session):
    series = make_series(api, world)
    ana = api(world.ana_token)
    cancelled = ana.post(f"/series/{series['id']}/occurrences/cancel",
                         json={"original_start": "2027-03-30T18:00:00Z"})
    assert cancelled.status_code == 200, cancelled.data
    assert cancelled.get_json()["status"] == "cancelled"
    occurrence_id = cancelled.get_json()["occurrence_id"]
    notices = session.query(Task).filter(Task.func.like("%send_notices")).all()
    assert [t.args[:2] for t in notices] == [[occurrence_id, "cancelled"]]
    moved = ana.post(f"/series/{series['id']}/occurrences/move",
                     json={"original_start": "2027-04-06T18:00:00Z", "new_local_start": "2027-04-07T19:30"})
    assert moved.status_code == 200, moved.data
    assert moved.get_json()["starts_at"].startswith("2027-04-07T18:30") and moved.get_json()["local_start"] == \
        "2027-04-07T19:30:00"
    page = ana.get(f"/series/{series['id']}/occurrences?from=2027-03-29T00:00:00Z&limit=3").get_json()["items"]
    assert [(o["local_start"], o["status"]) for o in page] == [
        ("2027-03-30T19:00:00", "cancelled"), ("2027-04-07T19:30:00", "scheduled"),
        ("2027-04-13T19:00:00", "scheduled")]
    assert page[1]["original_start"].startswith("2027-04-06T18:00")
    events = [(e.action, e.target_id, e.detail) for e in session.query(AuditEvent).order_by(AuditEvent.id)]
    assert events[1:] == [("occurrence.cancel", occurrence_id, {"series_id": series["id"], "status": "cancelled"}),
                          ("occurrence.move", moved.get_json()["occurrence_id"], {"series_id": series["id"]})]
    # Refusals: no meeting at that time, one already over.
    none = ana.post(f"/series/{series['id']}/occurrences/cancel", json={"original_start": "2027-03-31T18:00:00Z"})
    assert "has no meeting at that time" in assert_error(none, 422, "invalid")["message"]
    naive = ana.post(f"/series/{series['id']}/occurrences/cancel", json={"original_start": "2027-03-30T18:00:00"})
    assert_error(naive, 422, "invalid")


def test_series_refusals_are_the_services_sentences_and_write_nothing(api, world, session):
    ana = api(world.ana_token)
    base = {"line_id": world.line.id, **WEEKLY}
    cases = [({"rrule": "FREQ=HOURLY"}, "Meetings repeat DAILY, WEEKLY, MONTHLY or YEARLY"),
             ({"rrule": "FREQ=WEEKLY;BYDAY=XX"}, "BYDAY=XX is not valid"),
             ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
             ({"line_id": world.their_line.id}, "not one of this group's lines"),
             ({"host_user_id": world.bob.id}, "cannot host this group's meetings"),
             ({"access_code": "12ab"}, "4 to 12 digits"),
             ({"first_start_local": "2027-03-16T19:00+01:00"}, "no zone")]
    for change, sentence in cases:
        response = ana.post(f"/groups/{world.mine.id}/series", json={**base, **change})
        error = assert_error(response, 422, "invalid")
        assert sentence in error["message"] + str(error["fields"]), (change, error)
    assert session.query(MeetingSeries).count() == 0
    first = make_series(api, world, access_code="4821937")
    clash = ana.post(f"/groups/{world.mine.id}/series", json={**base, "access_code": "4821937"})
    assert "Another meeting on this line uses 4821937" in assert_error(clash, 422, "invalid")["message"]
    overlap = make_series(api, world, title="Same time")
    assert overlap["overlaps"][0]["series_id"] == first["id"]


def test_update_edit_from_and_end_a_series(api, world, session):
    series = make_series(api, world)
    ana = api(world.ana_token)
    tag = ana.get(f"/series/{series['id']}").headers["ETag"]
    changed = ana.patch(f"/series/{series['id']}", json={"title": "Tuesdays", "reminder_offsets": [60, 2880],
                                                         "host_user_id": world.ana.id, "max_participants": 20},
                        headers={"If-Match": tag})
    assert changed.status_code == 200, changed.data
    assert changed.get_json()["reminder_offsets"] == [2880, 60]
    assert_error(ana.patch(f"/series/{series['id']}", json={"title": "Late"}, headers={"If-Match": tag}),
                 412, "precondition_failed")
    assert "at most 5 reminders" in str(assert_error(
        ana.patch(f"/series/{series['id']}", json={"reminder_offsets": [1, 2, 3, 4, 5, 6]}), 422, "invalid"))
    continuation = ana.post(f"/series/{series['id']}/edit-from",
                            json={"from_date": "2027-05-01", "rrule": "FREQ=WEEKLY;BYDAY=WE",
                                  "first_start_local": "2027-05-05T19:00"})
    assert continuation.status_code == 201, continuation.data
    assert continuation.get_json()["first_start_local"] == "2027-05-05T19:00:00"
    assert continuation.get_json()["title"] == "Tuesdays"
    assert ana.delete(f"/series/{continuation.get_json()['id']}").status_code == 204
    assert ana.get(f"/series/{continuation.get_json()['id']}").get_json()["active"] is False
    events = [(e.action, e.detail) for e in session.query(AuditEvent).order_by(AuditEvent.id)]
    assert [a for a, _ in events] == ["series.create", "series.update", "series.edit_from", "series.deactivate"]
    assert events[1][1] == {"fields": ["host_user_id", "max_participants", "reminder_offsets", "title"]}


def test_attendance_of_a_meeting(api, world, things, session):
    start = session.get(MeetingSeries, things.series_id).first_start
    session.add_all([
        ConferenceParticipant(conference_sid="CF" + "1" * 32, call_sid="CA" + "1" * 32, member_id=things.member_id,
                              occurrence_id=things.occurrence_id, joined_at=start,
                              left_at=start + dt.timedelta(minutes=30)),
        ConferenceParticipant(conference_sid="CF" + "1" * 32, call_sid="CA" + "2" * 32, role="host",
                              occurrence_id=things.occurrence_id, joined_at=start,
                              left_at=start + dt.timedelta(minutes=60))])
    session.commit()
    ana = api(world.ana_token)
    got = ana.get(f"/occurrences/{things.occurrence_id}/attendance").get_json()
    assert sorted((a["shown_as"], a["role"], a["minutes"]) for a in got["items"]) == [
        ("Caller •••", "host", 60.0), ("Sam", "member", 30.0)]
    one = ana.get(f"/occurrences/{things.occurrence_id}").get_json()
    assert one["status"] == "ended" and one["attended"] == 2
    assert_error(api(world.bob_token).get(f"/occurrences/{things.occurrence_id}/attendance"), 404, "not_found")
    over = ana.post(f"/series/{things.series_id}/occurrences/cancel", json={"original_start": start.isoformat()})
    assert "on now or over" in assert_error(over, 422, "invalid")["message"]
