"""Sign in and sign out of the console (GET/POST /login, POST /logout)."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter
from flask_login import login_user, logout_user
from werkzeug.exceptions import TooManyRequests

from telline import db
from telline.accounts.users import authenticate
from telline.admin.sessions import SignedIn, check_csrf

# A person mistypes a password a few times; a script tries thousands. Per address and per account,
# so neither one machine nor a spread-out attack on one coordinator gets far.
PER_ADDRESS = "20 per 15 minutes"
PER_ACCOUNT = "5 per 15 minutes"


def _account_key() -> str:
    # The e-mail is a coordinator's personal data: Redis keeps a digest of it, not the address.
    email = (request.form.get("email") or "").strip().lower()
    return "login:" + hashlib.sha256(email.encode()).hexdigest()[:24]


def blueprint(limiter: Limiter) -> Blueprint:
    bp = Blueprint("console_login", __name__, template_folder="templates")
    bp.before_request(check_csrf)

    @bp.get("/login")
    def login_form() -> ResponseReturnValue:
        return render_template("admin/login.html", email="", error=None)

    @bp.post("/login")
    @limiter.limit(PER_ADDRESS)
    @limiter.limit(PER_ACCOUNT, key_func=_account_key)
    def login() -> ResponseReturnValue:
        email = request.form.get("email", "")[:254]
        user = authenticate(db.session(), email, request.form.get("password", "")[:1024])
        if user is None:
            db.session().rollback()
            return render_template("admin/login.html", email=email,
                                   error="That e-mail and password do not match an active account."), 401
        db.session().commit()
        session.clear()  # nothing from before sign-in survives it (session fixation)
        session.permanent = True
        login_user(SignedIn(user))
        return redirect(_safe_next(request.args.get("next")))

    @bp.post("/logout")
    def logout() -> ResponseReturnValue:
        logout_user()
        session.clear()
        return redirect(url_for("console_login.login_form"))

    @bp.errorhandler(TooManyRequests)
    def too_many(_error: TooManyRequests) -> ResponseReturnValue:
        return render_template("admin/login.html", email="",
                               error="Too many attempts to sign in. Wait 15 minutes, then try again."), 429

    return bp


def _safe_next(target: str | None) -> str:
    """Only a path on this site: a crafted ?next=https://elsewhere must not send a coordinator away."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") \
                and not target.startswith(("//", "/\\")):
            return target
    return url_for("console_today.today")
