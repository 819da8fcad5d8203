"""Voice webhooks: parse Twilio's form, call the domain, render TwiML. Nothing else."""

from __future__ import annotations

from flask import Blueprint, Response, abort, request

from telline import db, metrics
from telline.texts import say_language, t
from telline.twilio import twiml
from telline.voice.incoming import receive_call

bp = Blueprint("voice", __name__)


def _twiml(xml: str) -> Response:
    return Response(xml, content_type="text/xml; charset=utf-8")


@bp.post("/voice")
def incoming_call():
    call_sid = request.form.get("CallSid", "").strip()
    if not call_sid.startswith("CA") or len(call_sid) > 34:
        metrics.WEBHOOKS.labels(route="voice", outcome="bad_request").inc()
        abort(400, "CallSid missing or malformed")
    answer = receive_call(db.session(), call_sid=call_sid, from_raw=request.form.get("From"),
                          to_raw=request.form.get("To"), status=request.form.get("CallStatus"))
    metrics.WEBHOOKS.labels(route="voice", outcome=answer.kind).inc()
    key = "voice.unknown_line" if answer.kind == "unknown_line" else "voice.no_meeting"
    return _twiml(twiml.say_then_hangup(t(key, answer.language), say_language(answer.language)))
