"""The JSON API at /api/v1, with its OpenAPI 3.1 document at /api/v1/openapi.json and its docs
at /api/v1/docs. APIFlask makes the document from the same marshmallow schemas that validate
requests (telline.api.schemas). The views are thin: they ask telline.accounts.access who may
see what, call the services the CLI calls, and write the audit row in the same commit.

One module per resource: me (and tokens), users, groups (and lines), series, occurrences (and
attendance), inbox (and messages), audit_log, calendar_feeds, members (over telline/members/).
"""

from __future__ import annotations

import importlib
import os

from apiflask import APIFlask
from flask import Response, send_from_directory

RESOURCES = ("me", "users", "groups", "series", "occurrences", "inbox", "audit_log", "calendar_feeds", "members")
DOCS_ASSETS = "/api/v1/docs/assets"


def init_app(app: APIFlask) -> None:
    from telline.api import conditional, errors
    from telline.api.blueprint import bp
    for name in RESOURCES:  # each adds its routes to bp
        importlib.import_module(f"telline.api.{name}")
    del conditional  # imported for the hooks it adds to bp
    errors.init_app(app)
    app.register_blueprint(bp)
    _serve_docs_offline(app)
    for blueprint in app.blueprints.values():
        # Plain Flask blueprints (the webhooks, the calendar feed) are not part of the document.
        # Said explicitly: APIFlask 3.1 fails making the document when a plain blueprint has a
        # before_request function and no such attribute. Call init_app after the other blueprints.
        if not hasattr(blueprint, "enable_openapi"):
            blueprint.enable_openapi = False  # type: ignore[attr-defined]
    app.config.update(DESCRIPTION="telline's JSON API. Authorization: Bearer tl_… (an API token); errors are "
                      '{"error": {"status", "code", "message", "fields"}}; lists page with ?limit=&after= '
                      "(`next`); GETs carry an ETag (If-None-Match: 304), PATCH takes If-Match (412).")


def _serve_docs_offline(app: APIFlask) -> None:
    """Swagger UI's files from the flask-swagger-ui package, served here: the docs page works with
    no CDN (an intranet, a laptop offline, a strict Content-Security-Policy)."""
    import flask_swagger_ui  # type: ignore[import-untyped]  # used for its files only
    folder = os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")

    @app.get(f"{DOCS_ASSETS}/<path:name>")
    @app.doc(hide=True)
    def api_docs_asset(name: str) -> Response:
        return send_from_directory(folder, name, max_age=86400)

    app.config.update(SWAGGER_UI_CSS=f"{DOCS_ASSETS}/swagger-ui.css",
                      SWAGGER_UI_BUNDLE_JS=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                      SWAGGER_UI_STANDALONE_PRESET_JS=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
                      DOCS_FAVICON=f"{DOCS_ASSETS}/favicon-32x32.png")
