"""/groups and their /lines: a coordinator reads and configures their own groups; an admin
creates groups and attaches Twilio numbers (lines)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from apiflask import abort

from telline import db
from telline import groups as group_service
from telline.accounts import access, audit
from telline.api import conditional, paging, schemas
from telline.api.auth import auth, current_user
from telline.api.blueprint import bp
from telline.models import Group, Line

GroupPage = paging.page_schema(schemas.GroupOut, "GroupPage")
LinePage = paging.page_schema(schemas.LineOut, "LinePage")
_GROUP_FIELDS = ("name", "language", "timezone", "region", "text_code", "join_needs_confirmation", "quiet_hours",
                 "crisis_resource", "coordinator_contact")


def group_view(group: Group) -> dict[str, Any]:
    quiet = ("none" if group.quiet_start == group.quiet_end
             else f"{group.quiet_start:%H:%M}-{group.quiet_end:%H:%M}")
    return {**{c: getattr(group, c) for c in ("id", "name", "language", "timezone", "default_region", "text_code",
                                              "join_needs_confirmation", "crisis_resource", "coordinator_contact",
                                              "message_retention_days", "created_at")},
            "quiet_hours": quiet}


@bp.post("/groups")
@bp.auth_required(auth)
@bp.input(schemas.GroupIn, arg_name="data")
@bp.output(schemas.GroupOut, status_code=201)
@bp.doc(tags=["groups"], summary="Create a group (admins)")
def create_group(data: dict[str, Any]) -> dict[str, Any]:
    user, session = current_user(), db.session()
    access.require_admin(user)
    group = group_service.create_group(session, **data)
    audit.record(session, user, "group.create", group_id=group.id, target_type="group", target_id=group.id)
    session.commit()
    return group_view(group)


@bp.get("/groups/<int:group_id>")
@bp.auth_required(auth)
@bp.output(schemas.GroupOut)
@bp.doc(tags=["groups"], summary="One of my groups")
def get_group(group_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    view = group_view(access.require_group(db.session(), current_user(), group_id))
    return view, 200, {"ETag": conditional.etag_of(schemas.GroupOut(), view)}


@bp.patch("/groups/<int:group_id>")
@bp.auth_required(auth)
@bp.input(schemas.GroupPatch, arg_name="data")
@bp.output(schemas.GroupOut)
@bp.doc(tags=["groups"], summary="Change a group's settings (its coordinators); If-Match refuses a lost update")
def update_group(group_id: int, data: dict[str, Any]) -> dict[str, Any]:
    user, session = current_user(), db.session()
    group = access.require_group(session, user, group_id)
    before = group_view(group)
    conditional.check_if_match(schemas.GroupOut(), before)
    group_service.configure_group(session, group.id, **{k: data.get(k) for k in _GROUP_FIELDS})
    after = group_view(group)
    changed = sorted(k for k in after if after[k] != before[k])
    if changed:
        audit.record(session, user, "group.update", group_id=group.id, target_type="group", target_id=group.id,
                     detail={"fields": ["region" if k == "default_region" else k for k in changed]})
    session.commit()
    return after


@bp.post("/groups/<int:group_id>/lines")
@bp.auth_required(auth)
@bp.input(schemas.LineIn, arg_name="data")
@bp.output(schemas.LineOut, status_code=201)
@bp.doc(tags=["lines"], summary="Attach a Twilio number to a group (admins)")
def add_line(group_id: int, data: dict[str, Any]) -> Line:
    user, session = current_user(), db.session()
    group = access.require_group(session, user, group_id)
    access.require_admin(user)
    line = group_service.add_line(session, group.id, data["phone_number"], data["label"])
    audit.record(session, user, "line.create", group_id=group.id, target_type="line", target_id=line.id)
    session.commit()
    return line


def _line(line_id: int) -> Line:
    session = db.session()
    line = session.get(Line, line_id)
    if line is None or not access.can_see_group(session, current_user(), line.group_id):
        abort(404, f"There is no line {line_id}.")
    return line


@bp.get("/lines/<int:line_id>")
@bp.auth_required(auth)
@bp.output(schemas.LineOut)
@bp.doc(tags=["lines"], summary="One line")
def get_line(line_id: int) -> tuple[Line, int, dict[str, str]]:
    line = _line(line_id)
    return line, 200, {"ETag": conditional.etag_of(schemas.LineOut(), line)}


@bp.patch("/lines/<int:line_id>")
@bp.auth_required(auth)
@bp.input(schemas.LinePatch, arg_name="data")
@bp.output(schemas.LineOut)
@bp.doc(tags=["lines"], summary="A line's label (its coordinators) or its SMS rate (admins)")
def update_line(line_id: int, data: dict[str, Any]) -> Line:
    user, session, line = current_user(), db.session(), _line(line_id)
    conditional.check_if_match(schemas.LineOut(), line)
    if "sms_rate" in data or "sms_rate_unit" in data:
        access.require_admin(user)  # what Twilio allows the number: the operator's to say
    before = schemas.LineOut().dump(line)
    group_service.configure_line(session, line, per_second=data.get("sms_rate"), unit=data.get("sms_rate_unit"),
                                 label=data.get("label"))
    after = schemas.LineOut().dump(line)
    changed = sorted(k for k in after if after[k] != before[k])
    if changed:
        audit.record(session, user, "line.update", group_id=line.group_id, target_type="line", target_id=line.id,
                     detail={"fields": changed})
    session.commit()
    return line



@bp.get("/groups")
@bp.auth_required(auth)
@bp.input(paging.PageQuery, location="query", arg_name="query")
@bp.output(GroupPage)
@bp.doc(tags=["groups"], summary="My groups (an admin's: every group)")
def list_groups(query: dict[str, Any]) -> dict[str, Any]:
    user = current_user()
    page = paging.by_id(db.session(), sa.select(Group).where(Group.id.in_(access.group_filter(user))), Group.id,
                        query["limit"], query["after"])
    return {**page, "items": [group_view(g) for g in page["items"]]}


@bp.get("/groups/<int:group_id>/lines")
@bp.auth_required(auth)
@bp.input(paging.PageQuery, location="query", arg_name="query")
@bp.output(LinePage)
@bp.doc(tags=["lines"], summary="A group's Twilio numbers")
def list_lines(group_id: int, query: dict[str, Any]) -> dict[str, Any]:
    session = db.session()
    group = access.require_group(session, current_user(), group_id)
    return paging.by_id(session, sa.select(Line).where(Line.group_id == group.id), Line.id, query["limit"],
                        query["after"])
