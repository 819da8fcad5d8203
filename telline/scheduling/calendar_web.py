"""GET /calendar/<token>.ics: a group's meetings for calendar apps. The token is the only key:
an unknown or revoked one gets the same plain 404 as any unknown URL. Access logs mask it
(telline.logs.mask_secrets_in)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, request

from telline import db
from telline.models import utcnow
from telline.scheduling import calendar, calendar_feeds

bp = Blueprint("calendar", __name__)


@bp.get("/calendar/<token>.ics")
def ics(token: str) -> Response:
    session = db.session()
    group_id = calendar_feeds.group_of(session, token)
    if group_id is None:
        abort(404)
    public = current_app.config["TELLINE"].public_url
    body = calendar.feed(session, group_id, utcnow(), domain=(urlsplit(public).hostname if public else None)
                         or "telline")
    tag = calendar.etag(body)
    headers = {"ETag": tag, "Cache-Control": "private, max-age=300",
               "Content-Disposition": 'inline; filename="meetings.ics"'}
    if tag in request.headers.get("If-None-Match", "").split(", ") or request.headers.get("If-None-Match") == "*":
        return Response(status=304, headers=headers)
    return Response(body, content_type="text/calendar; charset=utf-8", headers=headers)
