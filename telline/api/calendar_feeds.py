"""A group's private calendar URLs: make one (shown once), list the live ones, revoke one."""

from __future__ import annotations

from typing import Any

from apiflask import abort
from flask import current_app, request

from telline import db
from telline.accounts import access, audit
from telline.api import schemas
from telline.api.auth import auth, current_user
from telline.api.blueprint import bp
from telline.models import CalendarFeed
from telline.scheduling import calendar_feeds


@bp.get("/groups/<int:group_id>/calendar-feeds")
@bp.auth_required(auth)
@bp.output(schemas.FeedOut(many=True))
@bp.doc(tags=["calendar"], summary="The group's live calendar URLs (their ids: the URLs are not kept)")
def list_feeds(group_id: int) -> list[CalendarFeed]:
    session = db.session()
    group = access.require_group(session, current_user(), group_id)
    return calendar_feeds.current_feeds(session, group.id)


@bp.post("/groups/<int:group_id>/calendar-feeds")
@bp.auth_required(auth)
@bp.output(schemas.FeedCreated, status_code=201)
@bp.doc(tags=["calendar"], summary="A new private .ics URL, shown once in this answer")
def create_feed(group_id: int) -> dict[str, Any]:
    user, session = current_user(), db.session()
    group = access.require_group(session, user, group_id)
    feed, token = calendar_feeds.create_feed(session, group.id)
    audit.record(session, user, "calendar.create", group_id=group.id, target_type="calendar_feed",
                 target_id=feed.id)
    session.commit()
    public = (current_app.config["TELLINE"].public_url or request.url_root).rstrip("/")
    shown = {name: getattr(feed, name) for name in schemas.FeedOut().fields}
    return {**shown, "url": public + calendar_feeds.path(token)}


@bp.delete("/calendar-feeds/<int:feed_id>")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(tags=["calendar"], summary="Revoke a calendar URL: it answers 404 from now on")
def revoke_feed(feed_id: int) -> tuple[str, int]:
    user, session = current_user(), db.session()
    feed = session.get(CalendarFeed, feed_id)
    if feed is None or not access.can_see_group(session, user, feed.group_id):
        abort(404, f"There is no calendar feed {feed_id}.")
    if feed.revoked_at is None:
        calendar_feeds.revoke_feed(session, feed.id)
        audit.record(session, user, "calendar.revoke", group_id=feed.group_id, target_type="calendar_feed",
                     target_id=feed.id)
    session.commit()
    return "", 204
