"""/audit: what users did, newest first. Admins only (issue 11: "readable by admins")."""

from __future__ import annotations

from typing import Any

from telline import db
from telline.accounts import access, audit
from telline.api import paging, schemas
from telline.api.auth import auth, current_user
from telline.api.blueprint import bp

AuditPage = paging.page_schema(schemas.AuditOut, "AuditPage")


@bp.get("/audit")
@bp.auth_required(auth)
@bp.input(schemas.AuditQuery, location="query", arg_name="query")
@bp.output(AuditPage)
@bp.doc(tags=["audit"], summary="The audit log, newest first (admins); `group_id` narrows it")
def list_audit(query: dict[str, Any]) -> dict[str, Any]:
    access.require_admin(current_user())
    events = audit.list_events(db.session(), group_id=query["group_id"], before_id=query["after"],
                               limit=query["limit"] + 1)
    more, events = len(events) > query["limit"], events[:query["limit"]]
    return {"items": events, "next": str(events[-1].id) if more and events else None}
