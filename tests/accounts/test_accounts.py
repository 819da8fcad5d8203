import datetime as dt

import pytest
from argon2 import PasswordHasher

from telline import db, groups
from telline.accounts import access, audit, tokens, users
from telline.models import AppendOnlyError, AuditEvent, User


def make(session, email="ana@example.org", role="coordinator", group_ids=(), **kw):
    return users.create_user(session, email=email, display_name="Ana", password="correct horse 1",
                             role=role, group_ids=group_ids, **kw)


def test_user_email_normalised_password_hashed_and_authenticated(session):
    user = make(session, email="  Ana@Example.ORG ", phone="+33 6 12 34 56 78", timezone="Europe/Paris")
    assert user.email == "ana@example.org" and user.phone == "+33612345678"
    assert user.password_hash.startswith("$argon2id$")
    assert users.authenticate(session, "ANA@example.org", "correct horse 1") is user
    assert users.authenticate(session, "ana@example.org", "wrong password") is None
    assert users.authenticate(session, "nobody@example.org", "correct horse 1") is None
    users.deactivate(session, user)
    assert users.authenticate(session, "ana@example.org", "correct horse 1") is None


@pytest.mark.parametrize(("field", "value", "message"), [
    ("email", "not-an-email", "is not an e-mail address"),
    ("timezone", "Mars/Olympus", "is not a time zone: give an IANA name"),
    ("phone", "+33 12", "too short"),
    ("role", "root", "The role is admin or coordinator"),
    ("password", "short", "at least 10 characters"),
    ("language", "xx", "is not available"),
    ("display_name", "  ", "display name"),
])
def test_each_bad_field_has_its_sentence_and_nothing_is_written(session, field, value, message):
    fields = dict(email="b@example.org", display_name="B", password="long enough pw", role="coordinator")
    fields[field] = value
    with pytest.raises(users.InvalidUser, match=message):
        users.create_user(session, **fields)
    assert users.list_users(session) == []


def test_duplicate_email_and_unknown_group_refused(session):
    make(session)
    with pytest.raises(users.InvalidUser, match="already exists"):
        make(session, email="ANA@example.org")
    with pytest.raises(users.InvalidUser, match="There is no group 999"):
        make(session, email="c@example.org", group_ids=[999])


def test_rehash_when_argon2_parameters_change(session, monkeypatch):
    user = make(session)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    user.password_hash = weak.hash("correct horse 1")
    assert users.authenticate(session, user.email, "correct horse 1") is user
    assert "m=8," not in user.password_hash and users._hasher.verify(user.password_hash, "correct horse 1")


def test_token_lifecycle(session):
    user = make(session)
    token, raw = tokens.issue_token(session, user, "laptop")
    assert raw.startswith("tl_") and len(raw) > 40 and token.prefix == raw[:10]
    assert raw not in token.token_hash and len(token.token_hash) == 64
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert tokens.user_for_token(session, raw, now) is user and token.last_used_at == now
    assert tokens.user_for_token(session, raw, now + dt.timedelta(seconds=30)) is user
    assert token.last_used_at == now  # not rewritten within the minute
    assert tokens.user_for_token(session, raw, now + dt.timedelta(minutes=2)) is user
    assert token.last_used_at == now + dt.timedelta(minutes=2)
    assert tokens.user_for_token(session, raw + "x", now) is None
    assert tokens.user_for_token(session, "", now) is None
    other = make(session, email="o@example.org")
    assert tokens.revoke_token(session, token.id, user_id=other.id) is None  # not theirs
    tokens.revoke_token(session, token.id)
    assert tokens.user_for_token(session, raw, now) is None


def test_token_of_deactivated_user_refused(session):
    user = make(session)
    _, raw = tokens.issue_token(session, user, "")
    users.deactivate(session, user)
    assert tokens.user_for_token(session, raw) is None


def test_access_coordinator_sees_only_their_groups_admin_all(session):
    mine = groups.create_group(db.session(), name="Mine")
    theirs = groups.create_group(db.session(), name="Theirs")
    coordinator = make(session, group_ids=[mine.id])
    admin = make(session, email="admin@example.org", role="admin")
    assert access.group_ids(session, coordinator) == [mine.id]
    assert access.group_ids(session, admin) == [mine.id, theirs.id]
    assert access.require_group(session, coordinator, mine.id) is mine
    with pytest.raises(access.NotFound, match=f"There is no group {theirs.id}"):
        access.require_group(session, coordinator, theirs.id)
    with pytest.raises(access.NotFound):
        access.require_group(session, admin, 12345)
    with pytest.raises(access.Forbidden):
        access.require_admin(coordinator)
    users.set_groups(session, coordinator, [theirs.id])
    assert access.group_ids(session, coordinator) == [theirs.id]
    users.deactivate(session, coordinator)
    assert access.group_ids(session, coordinator) == []


def test_audit_refuses_unsafe_detail_and_is_append_only(session):
    user = make(session)
    event = audit.record(session, user, "inbox.read", detail={"count": 3, "fields": ["status"]})
    for detail in ({"body": "I feel awful"}, {"name": "Ana"}, {"fields": ["Ana Smith +33612345678"]},
                   {"count": "+33612345678"}):
        with pytest.raises(audit.UnsafeDetail):
            audit.record(session, user, "inbox.read", detail=detail)
    session.commit()
    event.detail = {"count": 4}
    with pytest.raises(AppendOnlyError):
        session.flush()
    session.rollback()
    session.delete(session.get(AuditEvent, event.id))
    with pytest.raises(AppendOnlyError):
        session.flush()
    session.rollback()


def test_audit_list_newest_first_and_paged(session):
    user = make(session)
    g = groups.create_group(db.session(), name="G")
    ids = [audit.record(session, user, "series.update", group_id=g.id if i % 2 else None).id for i in range(5)]
    assert [e.id for e in audit.list_events(session, limit=2)] == ids[::-1][:2]
    assert [e.id for e in audit.list_events(session, before_id=ids[2])] == [ids[1], ids[0]]
    assert [e.id for e in audit.list_events(session, group_id=g.id)] == [ids[3], ids[1]]
    assert isinstance(user, User)
