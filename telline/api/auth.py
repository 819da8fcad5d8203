"""Who is calling: `Authorization: Bearer tl_…`, an API token (telline.accounts.tokens).

Unknown, revoked, or of a deactivated user: 401 with `WWW-Authenticate: Bearer`, the same answer
for each (nothing tells which). Without an Authorization header, the console's session is the other
way in (its own pages' calls), through the same current_user(); as a cookie comes with any request
a browser makes, a session's unsafe call must also carry the page's CSRF token (X-CSRFToken).
"""

from __future__ import annotations

from apiflask import HTTPTokenAuth
from apiflask.exceptions import HTTPError
from flask import Response

from telline import db
from telline.accounts import tokens
from telline.admin import sessions
from telline.api import errors
from telline.models import User


class _TokenOrSession(HTTPTokenAuth):
    """Flask-HTTPAuth asks verify_token only when a token came; ask it always, so that a request
    without one can still be the console's session."""

    def authenticate(self, auth: object, stored_password: object) -> User | None:
        token = getattr(auth, "token", None)
        user: User | None = self.ensure_sync(self.verify_token_callback)(token or "")
        return user


auth = _TokenOrSession(scheme="Bearer", description="An API token (`telline user token EMAIL`, or POST "
                       "/api/v1/me/tokens); or, from the console's own pages, its session and X-CSRFToken.")


@auth.verify_token  # type: ignore[untyped-decorator]  # flask-httpauth has no annotations
def _verify(raw: str | None) -> User | None:
    if raw:
        return tokens.user_for_token(db.session(), raw)
    user = sessions.signed_in_user()
    if user is not None:
        sessions.check_csrf()
    return user


@auth.error_processor
def _refused(error: HTTPError) -> Response:
    return errors.response(error.status_code, "A valid API token is needed: Authorization: Bearer tl_…")


def current_user() -> User:
    user = auth.current_user
    assert isinstance(user, User)  # every view is behind @bp.auth_required(auth)
    return user
