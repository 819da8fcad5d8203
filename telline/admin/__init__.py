"""The coordinators' web console: thin pages over the same services the API and the CLI call.

Sessions (sessions.py), sign-in and sign-out (login.py), pages (today.py, …). A page never holds a
rule of its own: who may see a group is accounts.access, what a meeting is is scheduling.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask, url_for

from telline.config import Settings

STATIC = Path(__file__).with_name("static")


def init_app(app: Flask, settings: Settings) -> None:
    from telline.admin import attendance, live, login, sessions, today
    sessions.init_app(app, settings)
    app.register_blueprint(login.blueprint(sessions.limiter_of(app)))
    app.register_blueprint(today.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(attendance.bp)
    # Cache busting without a build step: an asset's URL carries a digest of its content, so a
    # browser may keep it for a year and still never runs an old one after an upgrade.
    versions = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12] for path in STATIC.iterdir()}
    today.bp.get_send_file_max_age = lambda filename: 365 * 24 * 3600  # type: ignore[method-assign]

    @app.context_processor
    def assets() -> dict[str, object]:
        return {"asset_url": lambda name: url_for("console_today.static", filename=name, v=versions[name])}
