"""A group's inbox (texts no feature claimed) and its messages. A body is shown only where
telline.accounts.access.body_visible says; numbers are masked. Reading the inbox or the
messages is in the audit log (who read what, never the bodies)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from apiflask import abort

from telline import db, phone
from telline.accounts import access, audit
from telline.api import paging, schemas
from telline.api.auth import auth, current_user
from telline.api.blueprint import bp
from telline.models import InboxItem, Line, Message

InboxPage = paging.page_schema(schemas.InboxOut, "InboxPage")
MessagePage = paging.page_schema(schemas.MessageOut, "MessagePage")


def _message_view(message: Message, shown: bool) -> dict[str, Any]:
    number = message.from_number if message.direction == "inbound" else message.to_number
    return {"id": message.id, "direction": message.direction, "line_id": message.line_id,
            "member_id": message.member_id, "member_number": phone.mask_tail(number),
            "body": message.body if shown else None, "status": message.status, "kind": message.kind,
            "created_at": message.created_at}


@bp.patch("/inbox/<int:item_id>")
@bp.auth_required(auth)
@bp.input(schemas.InboxPatch, arg_name="data")
@bp.output(schemas.InboxOut)
@bp.doc(tags=["inbox"], summary="Mark an inbox text done (or open again)")
def update_inbox_item(item_id: int, data: dict[str, Any]) -> dict[str, Any]:
    user, session = current_user(), db.session()
    item = session.get(InboxItem, item_id)
    if item is None or not access.can_see_group(session, user, item.group_id):
        abort(404, f"There is no inbox item {item_id}.")
    if item.status != data["status"]:
        item.status = data["status"]
        audit.record(session, user, "inbox.update", group_id=item.group_id, target_type="inbox_item",
                     target_id=item.id, detail={"status": data["status"]})
    message = session.get_one(Message, item.message_id)
    visible = session.scalar(sa.select(access.body_visible(item.group_id or 0, sa.literal(message.member_id))))
    session.commit()
    return {"id": item.id, "group_id": item.group_id, "member_id": item.member_id, "status": item.status,
            "created_at": item.created_at, "message": _message_view(message, bool(visible))}


@bp.get("/groups/<int:group_id>/inbox")
@bp.auth_required(auth)
@bp.input(schemas.InboxQuery, location="query", arg_name="query")
@bp.output(InboxPage)
@bp.doc(tags=["inbox"], summary="Texts a coordinator should read, oldest first")
def list_inbox(group_id: int, query: dict[str, Any]) -> dict[str, Any]:
    user, session = current_user(), db.session()
    group = access.require_group(session, user, group_id)
    shown = access.body_visible(group.id, Message.member_id).label("shown")
    select = (sa.select(InboxItem, Message, shown).join(Message, Message.id == InboxItem.message_id)
              .where(InboxItem.group_id == group.id))
    if query["status"] != "all":
        select = select.where(InboxItem.status == query["status"])
    if query["after"] is not None:
        select = select.where(InboxItem.id > query["after"])
    rows = session.execute(select.order_by(InboxItem.id).limit(query["limit"] + 1)).all()
    more, rows = len(rows) > query["limit"], rows[:query["limit"]]
    items = [{"id": item.id, "group_id": item.group_id, "member_id": item.member_id, "status": item.status,
              "created_at": item.created_at, "message": _message_view(message, bool(visible))}
             for item, message, visible in rows]
    audit.record(session, user, "inbox.read", group_id=group.id, detail={"count": len(items)})
    session.commit()
    return {"items": items, "next": str(rows[-1][0].id) if more and rows else None}


@bp.get("/groups/<int:group_id>/messages")
@bp.auth_required(auth)
@bp.input(schemas.MessageQuery, location="query", arg_name="query")
@bp.output(MessagePage)
@bp.doc(tags=["inbox"], summary="Texts on the group's lines, newest first; `from`/`to` filter by date")
def list_messages(group_id: int, query: dict[str, Any]) -> dict[str, Any]:
    user, session = current_user(), db.session()
    group = access.require_group(session, user, group_id)
    shown = access.body_visible(group.id, Message.member_id).label("shown")
    select = (sa.select(Message, shown).join(Line, Line.id == Message.line_id).where(Line.group_id == group.id))
    if query["from_"] is not None:
        select = select.where(Message.created_at >= query["from_"])
    if query["to"] is not None:
        select = select.where(Message.created_at < query["to"])
    if query["member_id"] is not None:
        select = select.where(Message.member_id == query["member_id"])
    if query["after"] is not None:
        select = select.where(Message.id < query["after"])
    rows = session.execute(select.order_by(Message.id.desc()).limit(query["limit"] + 1)).all()
    more, rows = len(rows) > query["limit"], rows[:query["limit"]]
    items = [_message_view(message, bool(visible)) for message, visible in rows]
    audit.record(session, user, "messages.read", group_id=group.id, detail={"count": len(items)})
    session.commit()
    return {"items": items, "next": str(rows[-1][0].id) if more and rows else None}
