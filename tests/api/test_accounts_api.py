"""/me, tokens, /users: what admins and coordinators may do with accounts, and the audit rows."""

from __future__ import annotations

from telline import db
from telline.accounts import users
from telline.models import AuditEvent, User

from .test_foundation import assert_error


def audit_actions(**filters):
    return [(e.action, e.detail) for e in db.session().query(AuditEvent).filter_by(**filters).order_by(AuditEvent.id)]


def test_a_token_is_shown_once_works_and_stops_when_revoked(api, world):
    ana = api(world.ana_token)
    created = ana.post("/me/tokens", json={"name": "laptop"})
    assert created.status_code == 201
    token = created.get_json()["token"]
    assert token.startswith("tl_") and created.get_json()["prefix"] == token[:10]
    listed = ana.get("/me/tokens").get_json()
    assert "laptop" in [t["name"] for t in listed] and token not in ana.get("/me/tokens").get_data(as_text=True)
    assert api(token).get("/me").get_json()["email"] == "ana@example.org"
    token_id = created.get_json()["id"]
    assert ana.delete(f"/me/tokens/{token_id}").status_code == 204
    assert_error(api(token).get("/me"), 401, "unauthorized")
    assert [a for a, _ in audit_actions(user_id=world.ana.id)] == ["token.create", "token.revoke"]
    assert_error(ana.delete(f"/me/tokens/{token_id + 1000}"), 404, "not_found")


def test_an_admin_creates_a_coordinator_who_then_works_from_a_token(api, world, session):
    admin = api(world.admin_token)
    created = admin.post("/users", json={"email": "Cleo@Example.org", "display_name": "Cleo",
                                         "password": "a long passphrase", "role": "coordinator",
                                         "group_ids": [world.mine.id], "timezone": "Europe/London",
                                         "phone": "+33 6 12 34 56 78"})
    assert created.status_code == 201, created.data
    body = created.get_json()
    assert body["email"] == "cleo@example.org" and body["group_ids"] == [world.mine.id]
    assert "password" not in body and "password_hash" not in body
    assert users.authenticate(session, "cleo@example.org", "a long passphrase") is not None
    issued = admin.post(f"/users/{body['id']}/tokens", json={"name": "phone"})
    cleo = api(issued.get_json()["token"])
    assert [g["id"] for g in cleo.get("/groups").get_json()["items"]] == [world.mine.id]
    assert ("user.create", {"role": "coordinator", "group_ids": [world.mine.id]}) in audit_actions(
        user_id=world.admin.id)
    # Refusals, each with its sentence.
    again = admin.post("/users", json={"email": "cleo@example.org", "display_name": "C", "password": "x" * 12,
                                       "role": "coordinator"})
    assert "already exists" in assert_error(again, 422, "invalid")["message"]
    short = admin.post("/users", json={"email": "d@example.org", "display_name": "D", "password": "short",
                                       "role": "coordinator"})
    assert "at least 10 characters" in assert_error(short, 422, "invalid")["message"]
    assert session.query(User).filter_by(email="d@example.org").count() == 0


def test_a_coordinator_manages_no_user(api, world):
    ana = api(world.ana_token)
    assert_error(ana.get("/users"), 403, "forbidden")
    assert_error(ana.get(f"/users/{world.bob.id}"), 403, "forbidden")
    assert_error(ana.patch(f"/users/{world.ana.id}", json={"role": "admin"}), 403, "forbidden")
    assert_error(ana.post("/users", json={"email": "e@example.org", "display_name": "E", "password": "x" * 12,
                                          "role": "admin"}), 403, "forbidden")
    assert db.session().get(User, world.ana.id).role == "coordinator"


def test_an_admin_changes_groups_and_deactivates(api, world, session):
    admin = api(world.admin_token)
    tag = admin.get(f"/users/{world.ana.id}").headers["ETag"]
    changed = admin.patch(f"/users/{world.ana.id}", json={"group_ids": [world.mine.id, world.theirs.id],
                                                          "display_name": "Ana B."}, headers={"If-Match": tag})
    assert changed.status_code == 200 and changed.get_json()["group_ids"] == [world.mine.id, world.theirs.id]
    assert ("user.update", {"fields": ["display_name", "group_ids"]}) in audit_actions(user_id=world.admin.id)
    assert_error(admin.patch(f"/users/{world.ana.id}", json={"display_name": "X"}, headers={"If-Match": tag}),
                 412, "precondition_failed")
    assert admin.delete(f"/users/{world.ana.id}").status_code == 204
    assert_error(api(world.ana_token).get("/me"), 401, "unauthorized")
    assert_error(admin.delete(f"/users/{world.admin.id}"), 409, "conflict")
    assert_error(admin.patch(f"/users/{world.admin.id}", json={"active": False}), 409, "conflict")
    assert_error(admin.get("/users/424242"), 404, "not_found")
    bad = admin.patch(f"/users/{world.bob.id}", json={"timezone": "Mars/Olympus"})
    assert "Mars/Olympus" in assert_error(bad, 422, "invalid")["message"]
    session.expire_all()
    assert session.get(User, world.bob.id).timezone == "UTC"
