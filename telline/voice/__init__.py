"""Phone meetings: the incoming-call flow, the conference bridge, roster, moderation, dial-out."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from telline.sms.router import EXTENSION
    from telline.voice import dialout, sms_controls
    sms_controls.install(app.extensions[EXTENSION])
    dialout.install(app.extensions[EXTENSION])
