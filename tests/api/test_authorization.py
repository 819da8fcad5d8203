"""Every /api/v1 route and method, found in the app's URL map (a new route is tried without
anyone listing it), with the ids of one group's objects: as a coordinator of another group, with
a revoked token and with none. The answer is 401, 403 or 404, never the other group's data."""

from __future__ import annotations

import json
import re

import pytest

from telline import db
from telline.models import AuditEvent, MeetingSeries

PUBLIC = {"/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/assets/<path:name>"}
# A valid body for each route that takes one, so the answer is about who asks, not what they sent.
BODIES = {
    ("POST", "/api/v1/me/tokens"): {"name": "x"},
    ("POST", "/api/v1/users"): {"email": "eve@example.org", "display_name": "Eve", "password": "long enough pw",
                                "role": "admin"},
    ("PATCH", "/api/v1/users/<int:user_id>"): {"role": "admin"},
    ("POST", "/api/v1/users/<int:user_id>/tokens"): {"name": "stolen"},
    ("POST", "/api/v1/groups"): {"name": "Mine now"},
    ("PATCH", "/api/v1/groups/<int:group_id>"): {"name": "Taken over"},
    ("POST", "/api/v1/groups/<int:group_id>/lines"): {"phone_number": "+44 20 7946 0999"},
    ("PATCH", "/api/v1/lines/<int:line_id>"): {"label": "taken"},
    ("POST", "/api/v1/groups/<int:group_id>/series"): {"line_id": 1, "first_start_local": "2027-01-05T19:00"},
    ("PATCH", "/api/v1/series/<int:series_id>"): {"title": "Taken"},
    ("POST", "/api/v1/series/<int:series_id>/edit-from"): {"from_date": "2027-06-01"},
    ("POST", "/api/v1/series/<int:series_id>/occurrences/cancel"): {"original_start": "2027-01-05T19:00:00Z"},
    ("POST", "/api/v1/series/<int:series_id>/occurrences/move"): {"original_start": "2027-01-05T19:00:00Z",
                                                                  "new_local_start": "2027-01-06T19:00"},
    ("PATCH", "/api/v1/inbox/<int:item_id>"): {"status": "done"},
    ("POST", "/api/v1/groups/<int:group_id>/members"): {"number": "+44 7700 900999", "display_name": "Eve"},
    ("PATCH", "/api/v1/groups/<int:group_id>/members/<int:member_id>"): {"display_name": "Taken"},
    ("POST", "/api/v1/groups/<int:group_id>/members/<int:member_id>/reset-number-flag"): {},
    ("POST", "/api/v1/groups/<int:group_id>/members/import"): {"phone": "+44 7911 123998"},
    ("POST", "/api/v1/numbers/data-export"): {"number": "+447700900123"},
    ("POST", "/api/v1/numbers/erase"): {"number": "+447700900123"},
}
# What a coordinator of another group may call, on their own account and groups only.
OWN = {("GET", "/api/v1/me"), ("GET", "/api/v1/me/tokens"), ("POST", "/api/v1/me/tokens"), ("GET", "/api/v1/groups")}


def api_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1") and rule.rule not in PUBLIC:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield method, rule


def path_for(rule, world, things):
    ids = {"group_id": world.mine.id, "line_id": world.line.id, "series_id": things.series_id,
           "occurrence_id": things.occurrence_id, "item_id": things.inbox_item_id, "feed_id": things.feed_id,
           "user_id": world.ana.id, "token_id": _ana_token_id(world), "member_id": things.member_id}
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(ids[m[1]]), rule.rule)


def _ana_token_id(world):
    from telline.accounts import tokens
    return next(t.id for t in tokens.tokens_of(db.session(), world.ana.id) if t.revoked_at is None)


def call(client, method, rule, path, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = BODIES.get((method, rule.rule))
    if method in ("POST", "PATCH") and body is None and rule.rule.rsplit("/", 1)[-1] not in ("calendar-feeds",):
        pytest.fail(f"{method} {rule.rule}: add a valid body to BODIES")
    return client.open(path, method=method, headers=headers, json=body)


def leaks(response, world, things):
    text = response.get_data(as_text=True)
    return [s for s in (things.body, world.mine.name, world.ana.email, world.line.phone_number, "Sam", "900123")
            if s in text]


def test_the_map_has_the_routes_we_expect(app):
    found = {(m, r.rule) for m, r in api_routes(app)}
    assert len(found) >= 30
    assert ("POST", "/api/v1/series/<int:series_id>/occurrences/cancel") in found


@pytest.mark.parametrize("who", ["nobody", "revoked", "unknown"])
def test_without_a_valid_token_every_route_is_401(app, client, world, things, who):
    token = {"nobody": None, "revoked": world.revoked_token, "unknown": "tl_" + "x" * 43}[who]
    for method, rule in api_routes(app):
        response = call(client, method, rule, path_for(rule, world, things), token)
        assert response.status_code == 401, (method, rule.rule, response.data)
        assert response.get_json()["error"]["code"] == "unauthorized" and not leaks(response, world, things)


def test_a_coordinator_of_another_group_gets_nothing_of_it(app, client, world, things):
    tried = 0
    for method, rule in api_routes(app):
        response = call(client, method, rule, path_for(rule, world, things), world.bob_token)
        assert not leaks(response, world, things), (method, rule.rule)
        if (method, rule.rule) in OWN:
            assert response.status_code in (200, 201), (method, rule.rule)
            if rule.rule == "/api/v1/groups":
                assert [g["id"] for g in response.get_json()["items"]] == [world.theirs.id]
        else:
            assert response.status_code in (403, 404), (method, rule.rule, response.data)
            assert json.loads(response.data)["error"]["status"] == response.status_code
        tried += 1
    assert tried >= 30
    # And nothing of the group changed.
    session = db.session()
    session.expire_all()
    assert session.get(MeetingSeries, things.series_id).title == "Tuesday"
    assert session.get(MeetingSeries, things.series_id).active
    assert {e.action for e in session.query(AuditEvent).filter_by(user_id=world.bob.id)} <= {"token.create"}
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {world.ana_token}"}).status_code == 200
