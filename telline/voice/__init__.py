"""Phone meetings: the incoming-call flow, the conference bridge, roster, moderation, dial-out."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from telline.sms.router import EXTENSION
    from telline.voice import call_me, sms_controls
    sms_controls.install(app.extensions[EXTENSION])
    call_me.install(app.extensions[EXTENSION])
