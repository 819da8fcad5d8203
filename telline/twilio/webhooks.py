"""The /twilio blueprint: every route under it is signature-checked first.

Entry webhooks (configure these on the Twilio number):
  POST /twilio/voice   incoming call        → telline.voice.webhooks
  POST /twilio/sms     incoming text        → telline.sms.webhooks
Callbacks referenced from TwiML/REST requests live in the same modules.
"""

from __future__ import annotations

from flask import Blueprint

from telline.sms.webhooks import bp as sms
from telline.twilio.security import require_twilio_signature
from telline.voice.webhooks import bp as voice


def blueprint() -> Blueprint:
    parent = Blueprint("twilio", __name__, url_prefix="/twilio")
    parent.before_request(require_twilio_signature)
    parent.register_blueprint(voice)
    parent.register_blueprint(sms)
    return parent
