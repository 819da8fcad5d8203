"""/me: the caller's own account and API tokens."""

from __future__ import annotations

from typing import Any

from apiflask import abort

from telline import db
from telline.accounts import audit, tokens, users
from telline.api import schemas
from telline.api.auth import auth, current_user
from telline.api.blueprint import bp
from telline.models import ApiToken, User


def user_view(user: User) -> dict[str, Any]:
    """A user as the API shows them: their fields and the groups they are given."""
    session = db.session()
    return {**{c: getattr(user, c) for c in ("id", "email", "display_name", "role", "language", "timezone", "phone",
                                             "active", "last_login_at", "created_at")},
            "group_ids": users.groups_of(session, user.id)}


@bp.get("/me")
@bp.auth_required(auth)
@bp.output(schemas.UserOut)
@bp.doc(tags=["me"], summary="Who the token is")
def me() -> dict[str, Any]:
    return user_view(current_user())


@bp.get("/me/tokens")
@bp.auth_required(auth)
@bp.output(schemas.TokenOut(many=True))
@bp.doc(tags=["me"], summary="My API tokens (their prefixes, never the tokens)")
def my_tokens() -> list[ApiToken]:
    return tokens.tokens_of(db.session(), current_user().id)


@bp.post("/me/tokens")
@bp.auth_required(auth)
@bp.input(schemas.TokenIn, arg_name="data")
@bp.output(schemas.TokenCreated, status_code=201)
@bp.doc(tags=["me"], summary="A new token, shown once in this answer")
def create_token(data: dict[str, Any]) -> dict[str, Any]:
    session, user = db.session(), current_user()
    token, raw = tokens.issue_token(session, user, data["name"])
    audit.record(session, user, "token.create", target_type="api_token", target_id=token.id,
                 detail={"token_id": token.id})
    session.commit()
    return {**{name: getattr(token, name) for name in schemas.TokenOut().fields}, "token": raw}


@bp.delete("/me/tokens/<int:token_id>")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(tags=["me"], summary="Revoke one of my tokens (at once)")
def revoke_token(token_id: int) -> tuple[str, int]:
    session, user = db.session(), current_user()
    if tokens.revoke_token(session, token_id, user_id=user.id) is None:
        abort(404, f"You have no token {token_id}.")
    audit.record(session, user, "token.revoke", target_type="api_token", target_id=token_id,
                 detail={"token_id": token_id})
    session.commit()
    return "", 204


