"""The audit log: what a user did, append-only (models.py refuses updates and deletes).

Never a message body, a member's name or number: targets are a type and an id, and `detail`
takes only the keys in ALLOWED_DETAIL (counts, field names, ids), each a number, a bool or a list
of field names.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline.models import AuditEvent, User

# Keys whose values cannot carry what a member wrote or who they are.
ALLOWED_DETAIL = frozenset({"fields", "count", "rows", "errors", "ids", "group_ids", "role", "token_id",
                            "occurrence_id", "series_id", "member_id", "line_id", "status"})
_ACTION = re.compile(r"[a-z_]+\.[a-z_]+")
_FIELD = re.compile(r"[a-z_]{1,40}")
_ROLES_STATUSES = frozenset({"admin", "coordinator", "open", "done", "active", "left", "pending",
                             "cancelled", "scheduled"})


class UnsafeDetail(ValueError):
    pass


def _check_detail(detail: dict[str, object]) -> dict[str, object]:
    for key, value in detail.items():
        if key not in ALLOWED_DETAIL:
            raise UnsafeDetail(f"The audit log takes no “{key}”: only {', '.join(sorted(ALLOWED_DETAIL))}.")
        if key in ("role", "status"):
            ok = isinstance(value, str) and value in _ROLES_STATUSES
        elif key == "fields":
            ok = isinstance(value, list) and all(isinstance(v, str) and _FIELD.fullmatch(v) for v in value)
        elif key in ("ids", "group_ids"):
            ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        else:
            ok = isinstance(value, int | bool)
        if not ok:
            raise UnsafeDetail(f"The audit detail “{key}” has a value of the wrong kind.")
    return dict(detail)


def record(session: Session, user: User, action: str, *, group_id: int | None = None,
           target_type: str | None = None, target_id: int | None = None,
           detail: dict[str, object] | None = None) -> AuditEvent:
    if not _ACTION.fullmatch(action):
        raise UnsafeDetail(f"An audit action looks like “inbox.read”, not “{action}”.")
    event = AuditEvent(user_id=user.id, actor=user.email, action=action, group_id=group_id,
                       target_type=target_type, target_id=target_id, detail=_check_detail(detail or {}))
    session.add(event)
    session.flush()
    return event


def list_events(session: Session, *, group_id: int | None = None, before_id: int | None = None,
                limit: int = 50) -> list[AuditEvent]:
    """Newest first; `before_id` pages back (the last id of the previous page)."""
    query = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if group_id is not None:
        query = query.where(AuditEvent.group_id == group_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list(session.scalars(query))
