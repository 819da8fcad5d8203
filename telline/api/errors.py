"""One JSON shape for every 4xx under /api/v1:

    {"error": {"status": 404, "code": "not_found", "message": "There is no group 7.", "fields": {}}}

`fields` names the request fields at fault (validation) with their messages. The same shape is
given for a URL the API does not have, a method it does not take, a body that is not JSON or too
large, a missing or revoked token, and a refusal from the domain (its one-sentence reason).
Other URLs (the Twilio webhooks, the calendar feed) keep their own answers.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask, HTTPError
from apiflask.fields import Dict, Integer, Nested, Raw, String
from apiflask.schemas import Schema
from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

from telline import db, groups
from telline.accounts import access, tokens, users
from telline.api.blueprint import PREFIX, bp
from telline.members import csv_import, records
from telline.scheduling import calendar_feeds, series

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         406: "not_acceptable", 409: "conflict", 412: "precondition_failed", 413: "payload_too_large",
         415: "unsupported_media_type", 422: "invalid", 428: "precondition_required", 429: "too_many_requests"}
# The domain's refusals: each str() is one sentence a coordinator can act on.
REFUSALS: tuple[type[Exception], ...] = (groups.InvalidGroup, users.InvalidUser, tokens.InvalidToken,
                                         series.InvalidSeries, calendar_feeds.InvalidFeed, records.InvalidMember,
                                         csv_import.ImportFileError)


class ErrorDetail(Schema):
    status = Integer(required=True)
    code = String(required=True)
    message = String(required=True)
    fields = Dict(keys=String(), values=Raw(), required=True)  # type: ignore[assignment]  # the JSON name


class ErrorBody(Schema):
    error = Nested(ErrorDetail, required=True)


def body(status: int, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": CODES.get(status, "error"), "message": message,
                      "fields": fields or {}}}


def response(status: int, message: str, fields: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> Response:
    answer = jsonify(body(status, message, fields))
    answer.status_code = status
    answer.headers.update(headers or {})
    return answer


def _fields(detail: Any) -> dict[str, Any]:
    """APIFlask's {"json": {"title": ["…"]}, "query": {…}} as {"title": ["…"]}."""
    found: dict[str, Any] = {}
    if isinstance(detail, dict):
        for location in detail.values():
            if isinstance(location, dict):
                found.update({str(key): value for key, value in location.items()})
    return found


def _from_http_error(error: HTTPError) -> Response:
    fields = _fields(error.detail)
    message = error.message
    named = sorted(name for name in fields if name != "_schema")
    if error.status_code == 422 and named:
        message = "Some fields are not valid: " + ", ".join(named) + "."
    elif error.status_code == 422 and fields:  # the body as a whole ("_schema"): not an object, a NUL…
        whole = fields["_schema"]
        message = "The request body is not valid: " + (whole[0] if isinstance(whole, list) and whole else str(whole))
    return response(error.status_code, message or "", fields, {k: str(v) for k, v in dict(error.headers or {}).items()})


def _from_werkzeug(error: HTTPException) -> Response | HTTPException:
    if not (request.path == PREFIX or request.path.startswith(PREFIX + "/")) or error.code is None:
        return error  # not ours: the webhooks and pages answer as they always did
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    message = {400: "The request body is not valid JSON.", 404: "There is no such resource.",
               405: f"{request.method} is not allowed here.",
               413: "The request body is too large."}.get(error.code, error.description or "")
    if error.code == 400 and error.description and "JSON" not in error.description:
        message = error.description
    return response(error.code, message, headers=headers)


def _refused(error: Exception) -> Response:
    db.session().rollback()  # nothing of a refused change is kept
    if isinstance(error, access.NotFound):
        return response(404, str(error))
    if isinstance(error, access.Forbidden):
        return response(403, str(error))
    return response(422, _sentence(str(error)))


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else "Refused."


@bp.errorhandler(RecursionError)
def _too_deep(_error: RecursionError) -> Response:
    """JSON nested thousands deep (`[[[[…`) exhausts the parser's stack: a bad body, not a fault."""
    return response(400, "The request body is not valid JSON (nested too deeply).")


_refusals: tuple[type[Exception], ...] = (access.NotFound, access.Forbidden, *REFUSALS)
for _exc in _refusals:  # raised in the views: the blueprint's own handlers
    bp.register_error_handler(_exc, _refused)


def init_app(app: APIFlask) -> None:
    app.error_processor(_from_http_error)
    app.register_error_handler(HTTPException, _from_werkzeug)  # 404/405 match no view: the app's
    app.config["HTTP_ERROR_SCHEMA"] = ErrorBody
    app.config["VALIDATION_ERROR_SCHEMA"] = ErrorBody
