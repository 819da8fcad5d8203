"""Storing an incoming text, once per MessageSid, whatever it says.

Routing (keywords, consent, JOIN, …) builds on this in telline.sms.router.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone
from telline.dedupe import first_time
from telline.lines import line_for
from telline.models import Member, Message

log = logging.getLogger(__name__)
MAX_BODY = 1600  # Twilio's own limit; anything longer is not from Twilio, keep what fits


def receive_text(session: Session, *, message_sid: str, from_raw: str | None, to_raw: str | None,
                 body: str | None, num_media: int) -> Message | None:
    """The stored row, or None when this MessageSid was already handled."""
    if not first_time(session, f"sms:{message_sid}"):
        log.info("duplicate inbound text ignored", extra={"message_sid": message_sid})
        return None
    sender = phone.from_twilio(from_raw)
    line = line_for(session, phone.from_twilio(to_raw))
    member_id = session.scalar(sa.select(Member.id).where(Member.phone == sender)) if sender else None
    message = Message(direction="inbound", twilio_sid=message_sid, status="received",
                      line_id=line.id if line else None, member_id=member_id,
                      from_number=sender, to_number=line.phone_number if line else phone.from_twilio(to_raw),
                      body=(body or "")[:MAX_BODY], num_media=num_media)
    session.add(message)
    session.commit()
    log.info("inbound text stored", extra={"message_sid": message_sid, "from": phone.mask(sender),
                                           "line_known": line is not None, "chars": len(message.body)})
    return message
