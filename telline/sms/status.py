"""Message status callbacks: statuses only move forward; repeats and late arrivals are harmless.

Every callback is kept as a MessageEvent (unique per SID and status: a repeat is a
no-op). The message row shows the furthest status seen. A callback that arrives
before the send job has recorded the SID waits in message_events and is applied
when the job records it.

Neither side can miss the other: the callback commits its event before it looks for
the message, and the job commits the SID before it looks for events. Whichever looks
second sees what the other wrote.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from telline import phone
from telline.models import Member, Message, MessageEvent, MessageStatus, NumberStatus
from telline.sms import consent

log = logging.getLogger(__name__)

# How far along a message is. Final statuses share the top ranks; "read" beats "delivered".
RANK: dict[MessageStatus, int] = {
    "pending": 0, "deferred": 0, "retrying": 0, "submitting": 1, "accepted": 2, "scheduled": 2,
    "queued": 3, "sending": 4, "sent": 5, "failed": 6, "undelivered": 6, "canceled": 6,
    "delivered": 7, "read": 8}
_KNOWN: tuple[MessageStatus, ...] = tuple(RANK)
# Delivery errors that say something lasting about the member's number.
NUMBER_PROBLEMS: dict[int, NumberStatus] = {30003: "unreachable", 30005: "invalid", 30006: "landline"}


def reported(status: str | None) -> MessageStatus:
    """What a message is, by the status Twilio's answer to its send gave: that status when telline
    knows it, else "queued" (Twilio has the message)."""
    return status if status in _KNOWN else "queued"


def record_status(session: Session, sid: str, status: MessageStatus, error_code: int | None) -> bool:
    """Store one callback; False when it is a repeat."""
    try:
        with session.begin_nested():
            session.add(MessageEvent(twilio_sid=sid, status=status, error_code=error_code))
    except IntegrityError:
        return False
    session.commit()  # the event first (see the module's docstring)
    msg = session.scalar(sa.select(Message).where(Message.twilio_sid == sid))
    if msg is not None:
        _advance(session, msg, status, error_code)
    session.commit()
    return True


def apply_known_events(session: Session, msg: Message) -> None:
    """Apply callbacks stored before the row knew its SID (the caller commits)."""
    for event in session.scalars(sa.select(MessageEvent).where(MessageEvent.twilio_sid == msg.twilio_sid)):
        _advance(session, msg, event.status, event.error_code)


def _advance(session: Session, msg: Message, status: MessageStatus, error_code: int | None) -> None:
    if RANK.get(status, -1) <= RANK.get(msg.status, -1):
        return  # older news, or the same
    msg.status = status
    if error_code:
        msg.error_code = error_code
        _learn_from_error(session, msg, error_code)


def _learn_from_error(session: Session, msg: Message, code: int) -> None:
    if code == 21610 and msg.to_number:  # an outbound text: it has a number
        consent.record(session, msg.to_number, consent.OPT_OUT, "carrier", detail="delivery error 21610")
    problem = NUMBER_PROBLEMS.get(code)
    member = session.get(Member, msg.member_id) if problem and msg.member_id else None
    if problem and member is not None:
        member.sms_status, member.sms_status_detail = problem, f"delivery error {code}"
        log.warning("member's number flagged", extra={"member_id": member.id, "problem": problem,
                                                      "to": phone.mask(msg.to_number)})
