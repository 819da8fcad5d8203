"""The SMS line: inbound texts, keywords, consent, outbound pipeline, status callbacks."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Build the SMS router with the built-in handlers; features add theirs after this."""
    from telline.sms import handlers
    from telline.sms.router import EXTENSION, Router
    router = Router()
    handlers.install(router)
    app.extensions[EXTENSION] = router
