"""SMS webhooks: parse Twilio's form, call the domain, answer. Nothing else.

  POST /twilio/sms          an incoming text (configured on the number)
  POST /twilio/sms/status   status callbacks for texts telline sent

When the database does not answer, both still answer 2xx (Twilio retries neither): a text is
parked in Redis and handled once the database is back (telline.sms.parked); a status callback
is logged and dropped (the status then stays where it was).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, request

from telline import db, metrics, request_redis
from telline.sms import parked
from telline.sms.inbound import IncomingText, handle_text
from telline.sms.router import router
from telline.sms.status import RANK, record_status
from telline.twilio import twiml

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__)


def _sid(field: str, prefixes: tuple[str, ...]) -> str:
    sid = request.form.get(field, "").strip()
    if not sid.startswith(prefixes) or len(sid) > 34:
        metrics.WEBHOOKS.labels(route="sms", outcome="bad_request").inc()
        abort(400, f"{field} missing or malformed")
    return sid


@bp.post("/sms")
def incoming_text():
    try:
        num_media = max(0, int(request.form.get("NumMedia") or 0))
    except ValueError:
        num_media = 0
    text = IncomingText(message_sid=_sid("MessageSid", ("SM", "MM")), from_raw=request.form.get("From"),
                        to_raw=request.form.get("To"), body=request.form.get("Body"), num_media=num_media,
                        opt_out_type=(request.form.get("OptOutType") or "").upper() or None)
    try:
        handled_by = handle_text(db.session(), router(), text)
    except db.UNAVAILABLE:
        handled_by = "parked" if parked.park(request_redis.connection(), text) else "lost"
    metrics.WEBHOOKS.labels(route="sms", outcome=handled_by).inc()
    # Replies go through the outbound pipeline (tracked, rate-limited): nothing in the TwiML.
    return Response(twiml.no_reply(), content_type="text/xml; charset=utf-8")


@bp.post("/sms/status")
def message_status():
    sid = _sid("MessageSid", ("SM", "MM"))
    status = (request.form.get("MessageStatus") or request.form.get("SmsStatus") or "").strip().lower()
    if status not in RANK:
        metrics.WEBHOOKS.labels(route="sms_status", outcome="bad_request").inc()
        abort(400, "unknown MessageStatus")
    try:
        error_code = int(request.form.get("ErrorCode") or 0) or None
    except ValueError:
        error_code = None
    try:
        fresh = record_status(db.session(), sid, status, error_code)
    except db.UNAVAILABLE as exc:
        log.warning("status callback dropped: the database did not answer",
                    extra={"message_sid": sid, "status": status, "error": db.error_name(exc)})
        metrics.WEBHOOKS.labels(route="sms_status", outcome="dropped").inc()
        return Response(status=204)
    metrics.WEBHOOKS.labels(route="sms_status", outcome=status if fresh else "duplicate").inc()
    return Response(status=204)
