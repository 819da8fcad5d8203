"""telline: a phone and SMS line for peer support groups."""

from __future__ import annotations

import os
from collections.abc import Mapping

from apiflask import APIFlask
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from telline import config as config_module
from telline.config import Settings


def create_app(config: Settings | Mapping[str, object] | None = None) -> Flask:
    """The app factory: settings → extensions → blueprints → CLI.

    `config` is a ready Settings, or overrides by field name
    (`create_app({"database_url": "sqlite://", "testing": True})`); the rest
    comes from the environment.
    """
    # APIFlask is a Flask app that also makes /api/v1's OpenAPI document; json_errors=False leaves
    # every other URL's errors as Flask makes them (telline.api.errors shapes /api/v1's own).
    app = APIFlask(__name__, title="telline", version="1", spec_path="/api/v1/openapi.json",
                   docs_path="/api/v1/docs", docs_oauth2_redirect_path=None, json_errors=False)
    settings = (config if isinstance(config, Settings)
                else config_module.load(None, app.instance_path, **dict(config or {})))
    sqlite_path = settings.database_url.removeprefix("sqlite:///")
    if sqlite_path != settings.database_url and sqlite_path not in ("", ":memory:"):
        os.makedirs(os.path.dirname(os.path.abspath(sqlite_path)), exist_ok=True)
    app.config.update(TELLINE=settings, SECRET_KEY=settings.secret_key, TESTING=settings.testing,
                      MAX_CONTENT_LENGTH=settings.max_body_bytes, MAX_FORM_MEMORY_SIZE=settings.max_body_bytes)

    from telline import logs
    logs.configure(settings.log_format, settings.log_level)

    if settings.proxy_hops:
        h = settings.proxy_hops
        # Flask's documented way to wrap the app in WSGI middleware; mypy sees a method replaced.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=h, x_proto=h, x_host=h, x_port=h, x_prefix=h)

    from telline import db, job_queues, metrics, request_redis
    from telline.twilio import gateway
    db.init_app(app, settings.database_url)
    request_redis.init_app(app, settings.redis_url)
    job_queues.init_app(app, settings.redis_url, settings.queue_prefix, request_redis.connection_of(app))
    gateway.init_app(app, settings)
    metrics.init_app(app)

    from telline import sms, voice
    sms.init_app(app)
    voice.init_app(app)  # after sms: it adds its text commands to the SMS router

    from telline import admin
    admin.init_app(app, settings)

    from telline import health
    from telline.scheduling import calendar_web
    from telline.twilio import webhooks
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.blueprint())
    app.register_blueprint(calendar_web.bp)

    from telline import api
    api.init_app(app)
    return app
