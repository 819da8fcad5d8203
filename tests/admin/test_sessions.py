"""Console sessions as a coordinator meets them: sign in, the Today page, sign out, and the guards
(CSRF, rate limit, idle timeout, a password reset or deactivation ending sessions, no open redirect)."""

import datetime as dt
import re
import time

import itsdangerous.timed
import pytest

from telline import groups
from telline.accounts import users
from telline.scheduling.series import create_series

PASSWORD = "correct horse 1"


@pytest.fixture
def coordinator(session):
    mine = groups.create_group(session, name="Carers Tuesday", timezone="Europe/Paris", region="FR")
    other = groups.create_group(session, name="Grief Circle", timezone="America/New_York")
    for group, number in ((mine, "+33 1 84 88 00 00"), (other, "+1 617 555 0100")):
        line = groups.add_line(session, group.id, number)
        create_series(session, group=group, line=line, title=f"{group.name} meeting",
                      first_start_local=dt.datetime(2027, 1, 5, 19, 0), rrule="FREQ=WEEKLY",
                      now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    user = users.create_user(session, email="ana@example.org", display_name="Ana", password=PASSWORD,
                             role="coordinator", group_ids=[mine.id])
    session.commit()
    return user


def csrf_of(client, path="/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, email="ana@example.org", password=PASSWORD, path="/login"):
    return client.post(path, data={"email": email, "password": password, "csrf_token": csrf_of(client)})


def test_sign_in_shows_my_groups_next_meetings_and_sign_out_ends_it(client, coordinator):
    assert client.get("/").headers["Location"].startswith("/login?next=")
    answer = sign_in(client)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "Carers Tuesday meeting" in page and "Tue 05 Jan 2027, 19:00" in page and "(CET)" in page
    assert "Grief Circle" not in page  # another group's meetings are not on my page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/logout", data={"csrf_token": token}).headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_wrong_password_and_unknown_email_get_the_same_answer(client, coordinator):
    for email, password in (("ana@example.org", "wrong password"), ("nobody@example.org", PASSWORD)):
        answer = sign_in(client, email, password)
        assert answer.status_code == 401
        assert "That e-mail and password do not match an active account." in answer.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_a_form_without_the_csrf_token_is_refused(client, coordinator):
    client.get("/login")
    answer = client.post("/login", data={"email": "ana@example.org", "password": PASSWORD})
    assert answer.status_code == 400 and "CSRF" in answer.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_five_wrong_passwords_lock_the_account_for_a_while_even_with_the_right_one(client, coordinator):
    for _ in range(5):
        assert sign_in(client, password="wrong password").status_code == 401
    answer = sign_in(client)
    assert answer.status_code == 429
    assert "Too many attempts to sign in. Wait 15 minutes" in answer.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_next_keeps_a_path_on_this_site_and_drops_any_other(client, coordinator):
    for target, expected in (("/?tab=1", "/?tab=1"), ("https://evil.example/", "/"),
                             ("//evil.example/", "/"), ("/\\evil.example", "/")):
        client.get("/login")
        answer = client.post("/login?next=" + target,
                             data={"email": "ana@example.org", "password": PASSWORD, "csrf_token": csrf_of(client)})
        assert answer.headers["Location"] == expected, target


def test_password_reset_and_deactivation_end_existing_sessions(client, app, session, coordinator):
    sign_in(client)
    assert client.get("/").status_code == 200
    users.set_password(session, coordinator, "another horse 2")
    session.commit()
    assert client.get("/").status_code == 302
    sign_in(client, password="another horse 2")
    assert client.get("/").status_code == 200
    users.deactivate(session, coordinator)
    session.commit()
    assert client.get("/").status_code == 302


@pytest.fixture
def settings_overrides():
    return {"console_idle_minutes": 2}


def test_an_idle_session_expires_and_a_busy_one_does_not(client, coordinator, monkeypatch):
    sign_in(client)
    real = itsdangerous.timed.TimestampSigner.get_timestamp
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: int(time.time()) + 90)
    assert client.get("/").status_code == 200  # 90 s later: still on, and renewed
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: int(time.time()) + 200)
    assert client.get("/").status_code == 200  # 110 s after the renewal
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: int(time.time()) + 400)
    assert client.get("/").status_code == 302  # 200 s without a request: signed out
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", real)


def test_the_session_cookie_is_http_only_and_same_site(client, coordinator):
    cookie = sign_in(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Expires=" in cookie  # the idle timeout, renewed by every request


def test_assets_carry_a_digest_and_are_served(client, coordinator):
    page = client.get("/login").get_data(as_text=True)
    url = re.search(r'href="(/console/static/console.css\?v=[0-9a-f]{12})"', page).group(1)
    with client.get(url) as answer:
        assert answer.status_code == 200 and "max-age=31536000" in answer.headers["Cache-Control"]
