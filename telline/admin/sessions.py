"""Console sessions: who is signed in, for how long, and the guards every console form passes.

- Flask-Login keeps the signed-in user in Flask's signed session cookie (HttpOnly, SameSite=Lax,
  Secure when telline is served over https). The cookie is refused by the server once it is older
  than the idle timeout (TELLINE_CONSOLE_IDLE_MINUTES), and every request renews it: idle means idle.
- The id in the session carries a fingerprint of the password hash, so a password reset signs out
  every session of that user; a deactivated user is signed out at the next request.
- Flask-WTF's CSRF check runs on every unsafe console request (and on API calls made with the
  session, telline.api.auth), not on Twilio's webhooks, which are signed instead.
- Flask-Limiter counts sign-in attempts in Redis, per address and per e-mail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import cast

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect

from telline import db
from telline.config import Settings
from telline.models import User

_LIMITER = "telline.limiter"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
csrf = CSRFProtect()


class SignedIn:
    """The session's view of a user (what Flask-Login asks of one): the row, and an id that dies
    with a password change."""

    is_authenticated = True
    is_active = True  # the loader refuses deactivated users
    is_anonymous = False

    def __init__(self, user: User):
        self.user = user

    def get_id(self) -> str:
        return f"{self.user.id}.{_fingerprint(self.user)}"


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _load(session_id: str) -> SignedIn | None:
    user_id, _, fingerprint = session_id.partition(".")
    if not user_id.isdigit():
        return None
    user = db.session().get(User, int(user_id))
    if user is None or not user.active or fingerprint != _fingerprint(user):
        return None
    return SignedIn(user)


def init_app(app: Flask, settings: Settings) -> None:
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.public_url and settings.public_url.startswith("https://")),
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=settings.console_idle_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        # Checked where it applies (console forms, API calls made with the session), never on the
        # Twilio webhooks, which prove themselves with a signature.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which the idle timeout ends
    )
    manager = LoginManager(app)
    manager.login_view = "console_login.login"
    manager.login_message = ""
    manager.session_protection = "basic"
    manager.user_loader(_load)
    csrf.init_app(app)
    app.extensions[_LIMITER] = Limiter(
        get_remote_address, app=app, storage_uri=settings.redis_url,
        key_prefix=f"{settings.queue_prefix}telline-limits",
        strategy="fixed-window",
        # Redis down: count in this process's memory rather than lock every coordinator out.
        in_memory_fallback_enabled=True, swallow_errors=True)


def limiter_of(app: Flask) -> Limiter:
    return cast(Limiter, app.extensions[_LIMITER])


def signed_in_user() -> User | None:
    """The console session's user, or None (no session, expired, signed out, deactivated)."""
    if current_user and current_user.is_authenticated:
        return cast(SignedIn, current_user).user
    return None


def page_user() -> User:
    """The signed-in user of a page behind @login_required (which has already sent anyone else away)."""
    user = signed_in_user()
    assert user is not None, "page_user() is for views behind @login_required"
    return user


def check_csrf() -> None:
    """Refuse (400) an unsafe request without the session's CSRF token (form field or X-CSRFToken)."""
    if request.method in UNSAFE:
        csrf.protect()
