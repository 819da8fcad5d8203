"""Who is calling: `Authorization: Bearer tl_…`, an API token (telline.accounts.tokens).

Unknown, revoked, or of a deactivated user: 401 with `WWW-Authenticate: Bearer`, the same answer
for each (nothing tells which). The console's own session (the next issue) is to be a second
way in here, through the same current_user().
"""

from __future__ import annotations

from apiflask import HTTPTokenAuth
from apiflask.exceptions import HTTPError
from flask import Response

from telline import db
from telline.accounts import tokens
from telline.api import errors
from telline.models import User

auth = HTTPTokenAuth(scheme="Bearer",
                     description="An API token: `telline user token EMAIL`, or POST /api/v1/me/tokens.")


@auth.verify_token  # type: ignore[untyped-decorator]  # flask-httpauth has no annotations
def _verify(raw: str | None) -> User | None:
    return tokens.user_for_token(db.session(), raw)


@auth.error_processor
def _refused(error: HTTPError) -> Response:
    return errors.response(error.status_code, "A valid API token is needed: Authorization: Bearer tl_…")


def current_user() -> User:
    user = auth.current_user
    assert isinstance(user, User)  # every view is behind @bp.auth_required(auth)
    return user
