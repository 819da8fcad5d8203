"""SMS webhooks: parse Twilio's form, call the domain, answer. Nothing else.

  POST /twilio/sms          an incoming text (configured on the number)
  POST /twilio/sms/status   status callbacks for texts telline sent

When the database does not answer, both still answer 2xx (Twilio retries neither): a text is
parked in Redis and handled once the database is back (telline.sms.parked); a status callback
is logged and dropped (the status then stays where it was).
"""

from __future__ import annotations

import logging
from typing import get_args

from flask import Blueprint, Response

from telline import db, metrics, request_redis
from telline.sms import parked
from telline.sms.inbound import IncomingText, handle_text
from telline.sms.router import OptOutType, router
from telline.sms.status import RANK, record_status
from telline.twilio import form, twiml

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__)

MESSAGE_SID_PREFIXES = ("SM", "MM")
MAX_MEDIA = 10  # Twilio's limit per message: a larger count was not sent by Twilio
OPT_OUT_TYPES: frozenset[OptOutType] = frozenset(get_args(OptOutType))
STATUSES = frozenset(RANK)


@bp.post("/sms")
def incoming_text() -> Response:
    text = IncomingText(message_sid=form.sid("MessageSid", MESSAGE_SID_PREFIXES, "sms"),
                        from_raw=form.text("From"), to_raw=form.text("To"), body=form.text("Body"),
                        num_media=min(form.whole_number("NumMedia", high=None) or 0, MAX_MEDIA),
                        opt_out_type=form.choice("OptOutType", OPT_OUT_TYPES, case="upper"))
    try:
        handled_by = handle_text(db.session(), router(), text)
    except db.UNAVAILABLE:
        handled_by = "parked" if parked.park(request_redis.connection(), text) else "lost"
    metrics.WEBHOOKS.labels(route="sms", outcome=handled_by).inc()
    # Replies go through the outbound pipeline (tracked, rate-limited): nothing in the TwiML.
    return Response(twiml.no_reply(), content_type="text/xml; charset=utf-8")


@bp.post("/sms/status")
def message_status() -> Response:
    sid = form.sid("MessageSid", MESSAGE_SID_PREFIXES, "sms_status")
    status = form.choice("MessageStatus", STATUSES) or form.choice("SmsStatus", STATUSES)
    if status is None:
        form.refuse("sms_status", "unknown MessageStatus")
    # A code that is not a plausible Twilio error code is kept as unknown: the status still counts.
    error_code = form.whole_number("ErrorCode", low=1)
    try:
        fresh = record_status(db.session(), sid, status, error_code)
    except db.UNAVAILABLE as exc:
        log.warning("status callback dropped: the database did not answer",
                    extra={"message_sid": sid, "status": status, "error": db.error_name(exc)})
        metrics.WEBHOOKS.labels(route="sms_status", outcome="dropped").inc()
        return Response(status=204)
    metrics.WEBHOOKS.labels(route="sms_status", outcome=status if fresh else "duplicate").inc()
    return Response(status=204)
