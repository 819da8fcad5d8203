"""ETags: every 200 to a GET under /api/v1 carries one (a hash of its JSON), and a GET with a
matching If-None-Match gets 304 and no body. A PATCH may send If-Match with the ETag it read:
if the resource changed since, 412 and nothing is changed (two coordinators editing one series)."""

from __future__ import annotations

import json
from typing import Any

from apiflask.schemas import Schema
from flask import Response, request
from werkzeug.http import generate_etag, quote_etag

from telline.api import errors
from telline.api.blueprint import bp


def etag_of(schema: Schema, obj: Any) -> str:
    """The ETag a GET of `obj` gives: of its representation, so it changes when what it shows does."""
    data = json.dumps(schema.dump(obj), sort_keys=True, separators=(",", ":"), default=str).encode()
    return quote_etag(generate_etag(data))


class PreconditionFailed(Exception):
    pass


def check_if_match(schema: Schema, obj: Any) -> None:
    wanted = request.headers.get("If-Match")
    if wanted is None or wanted.strip() == "*":
        return
    if etag_of(schema, obj) not in [tag.strip() for tag in wanted.split(",")]:
        raise PreconditionFailed()


@bp.errorhandler(PreconditionFailed)
def _changed(_error: PreconditionFailed) -> Response:
    return errors.response(412, "It changed since you read it (If-Match): read it again, then retry.")


@bp.after_request
def _etag(response: Response) -> Response:
    if request.method in ("GET", "HEAD") and response.status_code == 200 and response.is_json:
        if "ETag" not in response.headers:
            response.add_etag()
        response.make_conditional(request)
        response.headers.setdefault("Cache-Control", "private, no-cache")
    return response
