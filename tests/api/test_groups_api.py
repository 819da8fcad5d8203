"""/groups and /lines: who may create, read and change them; the audit row of each change."""

from __future__ import annotations

import datetime as dt

from telline import db
from telline.models import AuditEvent, Group, Line

from .test_foundation import assert_error


def test_admins_create_groups_coordinators_do_not(api, world):
    made = api(world.admin_token).post("/groups", json={"name": "Night owls", "timezone": "Europe/Paris",
                                                         "language": "fr", "region": "fr"})
    assert made.status_code == 201
    body = made.get_json()
    assert body["region"] == "FR" and body["quiet_hours"] == "21:00-08:00" and body["language"] == "fr"
    event = db.session().query(AuditEvent).filter_by(action="group.create").one()
    assert event.group_id == body["id"] and event.actor == "admin@example.org"
    assert_error(api(world.ana_token).post("/groups", json={"name": "Mine"}), 403, "forbidden")


def test_a_coordinator_sees_and_configures_only_their_groups(api, world, session):
    ana = api(world.ana_token)
    assert [g["name"] for g in ana.get("/groups").get_json()["items"]] == ["Carers"]
    assert_error(ana.get(f"/groups/{world.theirs.id}"), 404, "not_found")
    assert_error(ana.get("/groups/987654"), 404, "not_found")  # the same answer as another group's
    changed = ana.patch(f"/groups/{world.mine.id}", json={"quiet_hours": "22:00-07:30", "text_code": "care-42",
                                                          "join_needs_confirmation": False})
    assert changed.status_code == 200, changed.data
    assert changed.get_json()["quiet_hours"] == "22:00-07:30" and changed.get_json()["text_code"] == "CARE42"
    event = session.query(AuditEvent).filter_by(action="group.update").one()
    assert event.detail == {"fields": ["join_needs_confirmation", "quiet_hours", "text_code"]}
    assert event.user_id == world.ana.id and event.group_id == world.mine.id
    # A refusal changes nothing, not even the fields that were fine.
    bad = ana.patch(f"/groups/{world.mine.id}", json={"name": "Renamed", "quiet_hours": "22:00-22:00"})
    assert "start and end at the same time" in assert_error(bad, 422, "invalid")["message"]
    session.expire_all()
    group = session.get(Group, world.mine.id)
    assert group.name == "Carers" and group.quiet_start == dt.time(22, 0)
    assert_error(ana.patch(f"/groups/{world.theirs.id}", json={"name": "Mine"}), 404, "not_found")


def test_lines_admins_attach_coordinators_label(api, world, session):
    admin, ana = api(world.admin_token), api(world.ana_token)
    made = admin.post(f"/groups/{world.mine.id}/lines", json={"phone_number": "020 7946 0002", "label": "Evenings"})
    assert made.status_code == 201 and made.get_json()["phone_number"] == "+442079460002"  # the group's region
    taken = admin.post(f"/groups/{world.theirs.id}/lines", json={"phone_number": "+44 20 7946 0002"})
    assert "already answers" in assert_error(taken, 422, "invalid")["message"]
    assert_error(ana.post(f"/groups/{world.mine.id}/lines", json={"phone_number": "+44 20 7946 0003"}),
                 403, "forbidden")
    line_id = made.get_json()["id"]
    assert ana.patch(f"/lines/{line_id}", json={"label": "Late"}).get_json()["label"] == "Late"
    assert_error(ana.patch(f"/lines/{line_id}", json={"sms_rate": 100}), 403, "forbidden")
    assert admin.patch(f"/lines/{line_id}", json={"sms_rate": 3, "sms_rate_unit": "messages"}).status_code == 200
    assert [ln["label"] for ln in ana.get(f"/groups/{world.mine.id}/lines").get_json()["items"]] == ["", "Late"]
    assert_error(ana.get(f"/lines/{world.their_line.id}"), 404, "not_found")
    assert session.query(Line).filter_by(phone_number="+442079460003").count() == 0
    actions = [e.action for e in session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions == ["line.create", "line.update", "line.update"]
