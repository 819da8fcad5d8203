"""/users: admins manage accounts (a coordinator gets 403 on each of these)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from apiflask import abort

from telline import db
from telline.accounts import access, audit, tokens, users
from telline.api import conditional, paging, schemas
from telline.api.auth import auth, current_user
from telline.api.blueprint import bp
from telline.api.me import user_view
from telline.models import User

UserPage = paging.page_schema(schemas.UserOut, "UserPage")


def _admin() -> User:
    user = current_user()
    access.require_admin(user)
    return user


def _user(user_id: int) -> User:
    found = db.session().get(User, user_id)
    if found is None:
        abort(404, f"There is no user {user_id}.")
    return found


@bp.post("/users")
@bp.auth_required(auth)
@bp.input(schemas.UserIn, arg_name="data")
@bp.output(schemas.UserOut, status_code=201)
@bp.doc(tags=["users"], summary="Create a user (admins); the password is never shown again")
def create_user(data: dict[str, Any]) -> dict[str, Any]:
    admin, session = _admin(), db.session()
    user = users.create_user(session, **data)
    audit.record(session, admin, "user.create", target_type="user", target_id=user.id,
                 detail={"role": user.role, "group_ids": sorted(set(data["group_ids"]))})
    session.commit()
    return user_view(user)


@bp.get("/users/<int:user_id>")
@bp.auth_required(auth)
@bp.output(schemas.UserOut)
@bp.doc(tags=["users"], summary="One user (admins)")
def get_user(user_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    _admin()
    view = user_view(_user(user_id))
    return view, 200, {"ETag": conditional.etag_of(schemas.UserOut(), view)}


@bp.patch("/users/<int:user_id>")
@bp.auth_required(auth)
@bp.input(schemas.UserPatch, arg_name="data")
@bp.output(schemas.UserOut)
@bp.doc(tags=["users"], summary="Change a user (admins); If-Match with the ETag read refuses a lost update")
def update_user(user_id: int, data: dict[str, Any]) -> dict[str, Any]:
    admin, session, user = _admin(), db.session(), _user(user_id)
    conditional.check_if_match(schemas.UserOut(), user_view(user))
    changed = users.update_user(session, user, **{k: data[k] for k in ("display_name", "role", "language",
                                                                     "timezone") if k in data},
                                phone=("" if data["phone"] is None else data["phone"]) if "phone" in data else None)
    if "password" in data:
        users.set_password(session, user, data["password"])
        changed.append("password")
    if "group_ids" in data:
        before = users.groups_of(session, user.id)
        if users.set_groups(session, user, data["group_ids"]) != before:
            changed.append("group_ids")
    if "active" in data and data["active"] != user.active:
        if user.id == admin.id:
            abort(409, "You cannot deactivate yourself: ask another admin.")
        if data["active"]:
            user.active = True
        else:
            users.deactivate(session, user)
        changed.append("active")
    if changed:
        audit.record(session, admin, "user.update", target_type="user", target_id=user.id,
                     detail={"fields": changed})
    session.commit()
    return user_view(user)


@bp.post("/users/<int:user_id>/tokens")
@bp.auth_required(auth)
@bp.input(schemas.TokenIn, arg_name="data")
@bp.output(schemas.TokenCreated, status_code=201)
@bp.doc(tags=["users"], summary="Issue a token for a user (admins), shown once: as `telline user token EMAIL`")
def issue_user_token(user_id: int, data: dict[str, Any]) -> dict[str, Any]:
    admin, session, user = _admin(), db.session(), _user(user_id)
    if not user.active:
        abort(409, "This user is deactivated: reactivate them first (PATCH active).")
    token, raw = tokens.issue_token(session, user, data["name"])
    audit.record(session, admin, "token.create", target_type="user", target_id=user.id,
                 detail={"token_id": token.id})
    session.commit()
    return {**{name: getattr(token, name) for name in schemas.TokenOut().fields}, "token": raw}


@bp.delete("/users/<int:user_id>/tokens/<int:token_id>")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(tags=["users"], summary="Revoke one of a user's tokens (admins)")
def revoke_user_token(user_id: int, token_id: int) -> tuple[str, int]:
    admin, session, user = _admin(), db.session(), _user(user_id)
    if tokens.revoke_token(session, token_id, user_id=user.id) is None:
        abort(404, f"User {user_id} has no token {token_id}.")
    audit.record(session, admin, "token.revoke", target_type="user", target_id=user.id,
                 detail={"token_id": token_id})
    session.commit()
    return "", 204


@bp.delete("/users/<int:user_id>")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(tags=["users"], summary="Deactivate a user (admins): kept for the audit log, tokens stop working")
def deactivate_user(user_id: int) -> tuple[str, int]:
    admin, session, user = _admin(), db.session(), _user(user_id)
    if user.id == admin.id:
        abort(409, "You cannot deactivate yourself: ask another admin.")
    if user.active:
        users.deactivate(session, user)
        audit.record(session, admin, "user.deactivate", target_type="user", target_id=user.id)
    session.commit()
    return "", 204



@bp.get("/users")
@bp.auth_required(auth)
@bp.input(paging.PageQuery, location="query", arg_name="query")
@bp.output(UserPage)
@bp.doc(tags=["users"], summary="Every user (admins)")
def list_users(query: dict[str, Any]) -> dict[str, Any]:
    _admin()
    page = paging.by_id(db.session(), sa.select(User), User.id, query["limit"], query["after"])
    return {**page, "items": [user_view(u) for u in page["items"]]}
