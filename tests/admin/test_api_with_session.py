"""The console's pages call /api/v1 with their session: the same user and rules as a token, and
an unsafe call needs the page's CSRF token (a cookie comes with any request a browser makes)."""

import re

from tests.admin.test_sessions import sign_in
from tests.api.conftest import world  # noqa: F401 — a fixture


def page_token(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


def test_a_signed_in_coordinator_reads_the_api_as_themselves(client, world):  # noqa: F811
    assert client.get("/api/v1/me").status_code == 401
    sign_in(client)
    me = client.get("/api/v1/me")
    assert me.status_code == 200 and me.json["email"] == "ana@example.org"
    assert client.get(f"/api/v1/groups/{world.mine.id}").status_code == 200
    assert client.get(f"/api/v1/groups/{world.theirs.id}").status_code == 404


def test_an_unsafe_call_with_the_session_needs_the_csrf_token(client, world):  # noqa: F811
    sign_in(client)
    refused = client.post("/api/v1/me/tokens", json={"name": "laptop"})
    assert refused.status_code == 400 and refused.json["error"]["status"] == 400
    assert "CSRF" in refused.json["error"]["message"]
    made = client.post("/api/v1/me/tokens", json={"name": "laptop"}, headers={"X-CSRFToken": page_token(client)})
    assert made.status_code == 201 and made.json["token"].startswith("tl_")


def test_a_bearer_token_when_given_decides_whatever_the_session(client, world):  # noqa: F811
    sign_in(client)
    answer = client.get("/api/v1/me", headers={"Authorization": "Bearer tl_not-a-real-token"})
    assert answer.status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {world.bob_token}"}).json["email"] == \
        "bob@example.org"
