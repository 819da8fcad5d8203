"""SMS webhooks: parse Twilio's form, call the domain, render TwiML. Nothing else."""

from __future__ import annotations

from flask import Blueprint, Response, abort, request

from telline import db, metrics
from telline.sms.inbound import receive_text
from telline.twilio import twiml

bp = Blueprint("sms", __name__)


@bp.post("/sms")
def incoming_text():
    message_sid = request.form.get("MessageSid", "").strip()
    if not message_sid.startswith(("SM", "MM")) or len(message_sid) > 34:
        metrics.WEBHOOKS.labels(route="sms", outcome="bad_request").inc()
        abort(400, "MessageSid missing or malformed")
    try:
        num_media = max(0, int(request.form.get("NumMedia") or 0))
    except ValueError:
        num_media = 0
    stored = receive_text(db.session(), message_sid=message_sid, from_raw=request.form.get("From"),
                          to_raw=request.form.get("To"), body=request.form.get("Body"),
                          num_media=num_media)
    metrics.WEBHOOKS.labels(route="sms", outcome="stored" if stored else "duplicate").inc()
    return Response(twiml.no_reply(), content_type="text/xml; charset=utf-8")
