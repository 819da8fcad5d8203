"""schemathesis against the app, from its own OpenAPI document, with an admin's token: whatever
it sends, no 5xx, and every answer (4xx included) is what the document says.

The operations are walked by hand (hypothesis' @given per operation) rather than through
schemathesis.pytest.from_fixture, which reads a node attribute pytest 9 no longer has."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from telline import db
from telline.accounts import tokens

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.mark.slow
def test_the_api_answers_as_its_document_says(app, world, things):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {world.admin_token}"}
    spare, _raw = tokens.issue_token(db.session(), world.admin, "spare")  # one the fuzzer may revoke
    db.session().commit()
    # Ids of objects that exist: random ids would mostly meet a 404 and test little else.
    real = {"group_id": world.mine.id, "line_id": world.line.id, "series_id": things.series_id,
            "occurrence_id": things.occurrence_id, "item_id": things.inbox_item_id, "feed_id": things.feed_id,
            "user_id": world.ana.id, "token_id": spare.id, "member_id": things.member_id}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    failures = []
    for operation in operations:
        @given(case=operation.as_strategy(), use_real_ids=st.booleans())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers_as_documented(case, use_real_ids):
            if use_real_ids and case.path_parameters:
                case.path_parameters = {name: real[name] for name in case.path_parameters}
            case.call_and_validate(headers=headers, checks=CHECKS)
        try:
            answers_as_documented()
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
