"""An incoming text: stored once per MessageSid, whatever it says, then routed.

Routing (telline.sms.router) decides who answers; this module only builds what
handlers need to know about the text.
"""

from __future__ import annotations

import dataclasses
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone
from telline.dedupe import first_time
from telline.lines import line_for
from telline.models import Group, Member, Message
from telline.sms import keywords
from telline.sms.router import Inbound, OptOutType, Router

log = logging.getLogger(__name__)
MAX_BODY = 1600  # Twilio's own limit; anything longer is not from Twilio, keep what fits


@dataclasses.dataclass(frozen=True)
class IncomingText:
    """The fields of Twilio's webhook that telline uses, as the webhook parsed them."""

    message_sid: str
    from_raw: str | None
    to_raw: str | None
    body: str | None
    num_media: int = 0
    opt_out_type: OptOutType | None = None  # Twilio's Advanced Opt-Out


def handle_text(session: Session, router: Router, text: IncomingText) -> str:
    """Store and route one text; returns the handler that took it ('duplicate' for a retry)."""
    if not first_time(session, f"sms:{text.message_sid}"):
        log.info("duplicate inbound text ignored", extra={"message_sid": text.message_sid})
        return "duplicate"
    sender = phone.from_twilio(text.from_raw)
    line = line_for(session, phone.from_twilio(text.to_raw))
    member = session.scalar(sa.select(Member).where(Member.phone == sender)) if sender else None
    message = Message(direction="inbound", twilio_sid=_own_sid(session, text.message_sid), status="received",
                      line_id=line.id if line else None, member_id=member.id if member else None,
                      from_number=sender, to_number=line.phone_number if line else phone.from_twilio(text.to_raw),
                      body=(text.body or "")[:MAX_BODY], num_media=text.num_media)
    session.add(message)
    session.flush()
    inbound = Inbound(message=message, line=line, group=session.get(Group, line.group_id) if line else None,
                      member=member, keyword=keywords.parse(text.body), opt_out_type=text.opt_out_type)
    handled_by = router.route(session, inbound)
    session.commit()
    log.info("inbound text", extra={"message_sid": text.message_sid, "from": phone.mask(sender),
                                    "line_known": line is not None, "handled_by": handled_by,
                                    "chars": len(message.body)})
    return handled_by


def _own_sid(session: Session, message_sid: str) -> str | None:
    """The text's SID for its row — None when another text (one telline sent) already holds it. Twilio's
    SIDs are unique, so only a crafted request gets here; the text is kept and routed all the same, and
    its webhook key (handle_text) still makes Twilio's retries harmless."""
    if session.scalar(sa.select(Message.id).where(Message.twilio_sid == message_sid)) is None:
        return message_sid
    log.warning("inbound MessageSid already names another text: kept without it", extra={"message_sid": message_sid})
    return None
