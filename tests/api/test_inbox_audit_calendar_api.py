"""The inbox and messages (bodies only in the member's own groups, numbers masked), the audit
log (admins; never a body), and calendar URLs made and revoked through the API."""

from __future__ import annotations

import datetime as dt

from telline.models import AuditEvent, InboxItem, Member, Membership, Message

from .conftest import Things
from .test_foundation import assert_error


def text(session, world, body, member=None, **kw):
    message = Message(direction="inbound", line_id=world.line.id, member_id=member.id if member else None,
                      from_number=member.phone if member else "+447700900999", to_number=world.line.phone_number,
                      body=body, status="received", **kw)
    session.add(message)
    session.flush()
    session.add(InboxItem(message_id=message.id, group_id=world.mine.id, member_id=message.member_id))
    return message


def test_the_inbox_shows_bodies_only_of_the_groups_own_members(api, world, things, session):
    outsider = Member(display_name="Kim", phone="+12125550199")
    session.add(outsider)
    session.flush()
    session.add(Membership(member_id=outsider.id, group_id=world.theirs.id))
    text(session, world, "from another group's member", outsider)
    text(session, world, "from a number that never joined")
    session.commit()
    ana = api(world.ana_token)
    items = ana.get(f"/groups/{world.mine.id}/inbox").get_json()["items"]
    assert [i["message"]["body"] for i in items] == [Things.body, None, "from a number that never joined"]
    assert [i["message"]["member_number"] for i in items] == ["•••0123", "•••0199", "•••0999"]
    assert "+447700900123" not in ana.get(f"/groups/{world.mine.id}/inbox").get_data(as_text=True)
    read = session.query(AuditEvent).filter_by(action="inbox.read").first()
    assert read.user_id == world.ana.id and read.detail == {"count": 3}
    done = ana.patch(f"/inbox/{things.inbox_item_id}", json={"status": "done"})
    assert done.status_code == 200 and done.get_json()["status"] == "done"
    assert [i["id"] for i in ana.get(f"/groups/{world.mine.id}/inbox").get_json()["items"]] == [
        i["id"] for i in items[1:]]
    assert len(ana.get(f"/groups/{world.mine.id}/inbox?status=all").get_json()["items"]) == 3
    assert_error(ana.patch(f"/inbox/{things.inbox_item_id}", json={"status": "archived"}), 422, "invalid")
    assert_error(api(world.bob_token).get(f"/groups/{world.mine.id}/inbox"), 404, "not_found")
    assert_error(api(world.bob_token).patch(f"/inbox/{things.inbox_item_id}", json={"status": "open"}),
                 404, "not_found")


def test_messages_filter_by_date_and_page_newest_first(api, world, things, session):
    old = dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC)
    for day in range(3):
        text(session, world, f"day {day}", created_at=old + dt.timedelta(days=day))
    session.commit()
    ana = api(world.ana_token)
    window = ana.get(f"/groups/{world.mine.id}/messages?from=2026-01-11T00:00:00Z&to=2026-01-13T00:00:00Z")
    assert [m["body"] for m in window.get_json()["items"]] == ["day 2", "day 1"]
    first = ana.get(f"/groups/{world.mine.id}/messages?limit=2").get_json()
    rest = ana.get(f"/groups/{world.mine.id}/messages?limit=2&after={first['next']}").get_json()
    assert [m["body"] for m in first["items"] + rest["items"]] == ["day 2", "day 1", "day 0", Things.body]  # by arrival
    assert rest["next"] is None
    backwards = ana.get(f"/groups/{world.mine.id}/messages?from=2026-01-13T00:00:00Z&to=2026-01-11T00:00:00Z")
    assert "to" in assert_error(backwards, 422, "invalid")["fields"]
    assert_error(ana.get(f"/groups/{world.mine.id}/messages?from=yesterday"), 422, "invalid")
    mine = ana.get(f"/groups/{world.mine.id}/messages?member_id={things.member_id}").get_json()["items"]
    assert [m["body"] for m in mine] == [Things.body]


def test_the_audit_log_is_for_admins_and_holds_no_body(api, world, things):
    ana = api(world.ana_token)
    ana.get(f"/groups/{world.mine.id}/inbox")
    ana.patch(f"/groups/{world.mine.id}", json={"crisis_resource": "Call 116 123"})
    assert_error(ana.get("/audit"), 403, "forbidden")
    log = api(world.admin_token).get("/audit")
    assert log.status_code == 200
    events = log.get_json()["items"]
    assert [e["action"] for e in events] == ["group.update", "inbox.read"]  # newest first
    assert events[0]["actor"] == "ana@example.org" and events[0]["detail"] == {"fields": ["crisis_resource"]}
    assert Things.body not in log.get_data(as_text=True) and "116 123" not in log.get_data(as_text=True)
    only = api(world.admin_token).get(f"/audit?group_id={world.theirs.id}").get_json()
    assert only["items"] == []
    page = api(world.admin_token).get("/audit?limit=1").get_json()
    assert len(page["items"]) == 1 and page["next"] == str(events[0]["id"])


def test_a_calendar_url_is_shown_once_works_and_is_revoked(api, world, client, session):
    ana = api(world.ana_token)
    made = ana.post(f"/groups/{world.mine.id}/calendar-feeds")
    assert made.status_code == 201
    url = made.get_json()["url"]
    path = url[url.index("/calendar/"):]
    assert client.get(path).status_code == 200 and b"BEGIN:VCALENDAR" in client.get(path).data
    feeds = ana.get(f"/groups/{world.mine.id}/calendar-feeds").get_json()
    assert [f["id"] for f in feeds] == [made.get_json()["id"]] and "url" not in feeds[0]
    assert_error(api(world.bob_token).delete(f"/calendar-feeds/{made.get_json()['id']}"), 404, "not_found")
    assert ana.delete(f"/calendar-feeds/{made.get_json()['id']}").status_code == 204
    assert client.get(path).status_code == 404
    assert ana.get(f"/groups/{world.mine.id}/calendar-feeds").get_json() == []
    assert [e.action for e in session.query(AuditEvent).order_by(AuditEvent.id)] == ["calendar.create",
                                                                                   "calendar.revoke"]
