"""With Redis down the console still signs people in: the attempt counter falls back to the web
process's memory (still limiting) instead of locking every coordinator out."""

import pytest

from telline.accounts import users
from tests.admin.test_sessions import PASSWORD, sign_in


@pytest.fixture
def settings_overrides():
    return {"redis_url": "redis://127.0.0.1:1/0"}  # nothing listens on port 1


def test_sign_in_works_and_is_still_limited_without_redis(client, session):
    users.create_user(session, email="ana@example.org", display_name="Ana", password=PASSWORD,
                      role="coordinator")
    session.commit()
    assert sign_in(client).status_code == 302
    assert client.get("/").status_code == 200
    for _ in range(4):  # every attempt counts, the one that succeeded too: five per account
        assert sign_in(client, password="wrong password").status_code == 401
    assert sign_in(client).status_code == 429
