"""What every /api/v1 answer shares: auth, the error shape, paging, ETags, the OpenAPI document."""

from __future__ import annotations

from telline import db
from telline.accounts import users
from telline.models import ApiToken, Group


def assert_error(response, status, code):
    assert response.status_code == status, response.data
    error = response.get_json()["error"]
    assert error["status"] == status and error["code"] == code and error["message"]
    return error


def test_openapi_document_is_3_1_and_covers_the_api_only(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/groups/{group_id}/series" in doc["paths"] and "/api/v1/me/tokens" in doc["paths"]
    assert all(path.startswith("/api/v1/") for path in doc["paths"])  # no webhooks, no docs assets
    assert doc["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    # The same schema validates the request and documents it.
    series_in = doc["components"]["schemas"]["SeriesIn"]
    assert "first_start_local" in series_in["required"]
    assert series_in["properties"]["duration_minutes"]["maximum"] == 1440
    error = doc["paths"]["/api/v1/groups/{group_id}"]["get"]["responses"]["404"]
    assert error["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody"


def test_docs_page_loads_its_files_from_this_server(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in html and "/api/v1/openapi.json" in html
    assert "cdn." not in html and "unpkg" not in html
    with client.get("/api/v1/docs/assets/swagger-ui-bundle.js") as asset:
        assert asset.status_code == 200 and b"SwaggerUIBundle" in asset.data


def test_no_token_unknown_revoked_or_deactivated_user_get_401_with_www_authenticate(api, world, session):
    users.deactivate(session, world.bob)
    session.commit()
    for token in (None, "tl_unknown", world.revoked_token, world.bob_token, "not-even-a-token"):
        response = api(token).get("/me")
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    me = api(world.ana_token).get("/me")
    assert me.status_code == 200 and me.get_json()["email"] == "ana@example.org"
    assert me.get_json()["group_ids"] == [world.mine.id]


def test_unknown_url_and_method_answer_in_the_error_shape(api, world, client):
    assert_error(api(world.ana_token).get("/nothing-here"), 404, "not_found")
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    response = api(world.ana_token).delete("/groups")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    # Elsewhere errors stay as they were (the webhooks, the calendar feed).
    other = client.get("/not-the-api")
    assert other.status_code == 404 and not other.is_json


def test_an_id_too_large_for_the_database_is_a_404_not_a_crash(api, world):
    assert_error(api(world.admin_token).get("/groups/99999999999999999999999"), 404, "not_found")
    assert_error(api(world.admin_token).get("/groups/0"), 404, "not_found")
    assert_error(api(world.admin_token).get("/groups/2147483648"), 404, "not_found")  # past PostgreSQL's INTEGER
    assert_error(api(world.admin_token).get("/groups/1/series?after=2147483648"), 422, "invalid")


def test_bad_json_wrong_types_and_oversized_bodies(api, world, app):
    admin = api(world.admin_token)
    bad = admin.post("/groups", data="{not json", content_type="application/json")
    assert_error(bad, 400, "bad_request")
    wrong = admin.post("/groups", json={"name": 12, "timezone": ["Europe/Paris"]})
    error = assert_error(wrong, 422, "invalid")
    assert set(error["fields"]) == {"name", "timezone"} and "name" in error["message"]
    unknown = admin.post("/groups", json={"name": "X", "is_admin": True})
    assert assert_error(unknown, 422, "invalid")["fields"] == {"is_admin": ["Unknown field."]}
    number = admin.get("/groups?limit=abc")
    assert assert_error(number, 422, "invalid")["fields"]["limit"] == ["Not a valid integer."]
    assert_error(admin.get("/groups?limit=100000"), 422, "invalid")
    huge = admin.post("/groups", json={"name": "x" * (app.config["MAX_CONTENT_LENGTH"] + 10)})
    assert_error(huge, 413, "payload_too_large")
    nested = admin.post("/groups", data="[" * 5000 + "]" * 5000, content_type="application/json")
    assert_error(nested, 400, "bad_request")
    assert db.session().query(Group).count() == 2  # nothing written by any of these


def test_crafted_values_are_refused_with_the_field_named(api, world):
    admin = api(world.admin_token)
    path = f"/groups/{world.mine.id}/series"
    start = '"first_start_local": "2027-01-05T19:00"'
    cases = [
        ('{"line_id": 1e400, ' + start + '}', "line_id"),  # JSON's infinity
        ('{"line_id": 99999999999999999999999999999, ' + start + '}', "line_id"),  # beyond any id
        ('{"line_id": NaN, ' + start + '}', "line_id"),
        ('{"line_id": true, ' + start + '}', "line_id"),  # a bool is no id
        ('{"line_id": "1", "first_start_local": "2027-02-30T19:00"}', "first_start_local"),  # no such day
        ('{"line_id": 1, "first_start_local": "0001-01-01T00:00"}', "first_start_local"),  # out of range
        ('{"line_id": 1, ' + start + ', "duration_minutes": 1.5}', "duration_minutes"),
    ]
    for body, field in cases:
        error = assert_error(admin.post(path, data=body, content_type="application/json"), 422, "invalid")
        assert field in error["fields"], (body, error)
    for body in ('"a string"', "[]", "null"):
        error = assert_error(admin.post(path, data=body, content_type="application/json"), 422, "invalid")
        assert error["message"] == "The request body is not valid: Invalid input type."
    nul = admin.post(path, data='{"line_id": 1, ' + start + ', "title": "a\\u0000b"}', content_type="application/json")
    assert "NUL" in assert_error(nul, 422, "invalid")["message"]  # PostgreSQL could not store it
    for query in ("from=0001-01-01T00:00:00Z", "from=9999-12-31T23:59:59Z", "to=tomorrow"):
        assert_error(admin.get(f"/groups/{world.mine.id}/occurrences?{query}"), 422, "invalid")
    infinite = admin.patch(f"/lines/{world.line.id}", data='{"sms_rate": Infinity}', content_type="application/json")
    assert "sms_rate" in assert_error(infinite, 422, "invalid")["fields"]
    not_a_number = admin.post(f"/groups/{world.mine.id}/lines", json={"phone_number": "call me maybe"})
    assert "is not a phone number" in assert_error(not_a_number, 422, "invalid")["message"]
    from telline.models import Line, MeetingSeries
    assert db.session().query(MeetingSeries).count() == 0 and db.session().query(Line).count() == 2


def test_a_domain_refusal_is_a_422_with_its_sentence_and_writes_nothing(api, world):
    response = api(world.admin_token).post("/groups", json={"name": "Night owls", "timezone": "Mars/Olympus"})
    error = assert_error(response, 422, "invalid")
    assert "Mars/Olympus" in error["message"] and "IANA" in error["message"]
    assert db.session().query(Group).count() == 2


def test_etag_and_if_none_match_give_304(api, world):
    ana = api(world.ana_token)
    first = ana.get(f"/groups/{world.mine.id}")
    tag = first.headers["ETag"]
    again = ana.get(f"/groups/{world.mine.id}", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b""
    listing = ana.get("/groups")
    assert ana.get("/groups", headers={"If-None-Match": listing.headers["ETag"]}).status_code == 304
    ana.patch(f"/groups/{world.mine.id}", json={"crisis_resource": "Call 116 123"})
    changed = ana.get(f"/groups/{world.mine.id}", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag


def test_if_match_refuses_a_lost_update(api, world):
    ana = api(world.ana_token)
    tag = ana.get(f"/groups/{world.mine.id}").headers["ETag"]
    assert ana.patch(f"/groups/{world.mine.id}", json={"name": "Carers (Leeds)"},
                     headers={"If-Match": tag}).status_code == 200
    stale = ana.patch(f"/groups/{world.mine.id}", json={"name": "Carers (York)"}, headers={"If-Match": tag})
    assert_error(stale, 412, "precondition_failed")
    assert ana.get(f"/groups/{world.mine.id}").get_json()["name"] == "Carers (Leeds)"


def test_keyset_pages_give_every_item_once(api, world, session):
    admin = api(world.admin_token)
    from telline import groups
    for i in range(5):
        groups.create_group(session, name=f"G{i}")
    session.commit()
    seen, after = [], None
    while True:
        page = admin.get("/groups?limit=3" + (f"&after={after}" if after else "")).get_json()
        seen += [g["id"] for g in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 7


def test_a_token_is_marked_used(api, world, session):
    api(world.ana_token).get("/me")
    used = session.query(ApiToken).filter_by(user_id=world.ana.id, name="test").one()
    assert used.last_used_at is not None
