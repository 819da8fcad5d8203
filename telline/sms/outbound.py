"""Asking for a text to be sent: one row in the caller's transaction, one job after commit.

    send_text(session, line=line, to="+33…", body="…", idempotency_key="reminder:12:2026-12-01")
    session.commit()   # the job is sent to RQ now, not before

Asking twice with the same key returns the first row and sends nothing more. The
job (telline.sms.delivery) applies consent, quiet hours, the line's rate and
Twilio's errors.
"""

from __future__ import annotations

import datetime as dt
import random

import sqlalchemy as sa
from rq import Retry
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from telline.models import Line, Message, MessageKind, utcnow
from telline.sms import segments
from telline.tasks import enqueue_after_commit

MAX_BODY = 1600  # Twilio refuses longer bodies (error 21617)
# Backoff for Twilio's "slow down" and server errors, jittered per message so a burst of
# refused sends does not come back as the same burst. Whole seconds: RQ's intervals are ints
# (and its scheduler moves due jobs once a second).
BACKOFF = (5, 15, 45, 120, 300, 600)


class InvalidText(ValueError):
    pass


def retry_policy() -> Retry:
    return Retry(max=len(BACKOFF), interval=[round(s * random.uniform(0.8, 1.2)) for s in BACKOFF])


def send_text(session: Session, *, line: Line, to: str, body: str, idempotency_key: str,
              member_id: int | None = None, urgent: bool = False, kind: MessageKind = "message",
              broadcast_id: int | None = None, send_at: dt.datetime | None = None) -> Message:
    """The outbound row for this key (new, or the one already asked for).

    send_at: not before this time (a reminder); the job is scheduled for then."""
    if not body or len(body) > MAX_BODY:
        raise InvalidText(f"a text must have 1 to {MAX_BODY} characters, this one has {len(body or '')}")
    existing = session.scalar(sa.select(Message).where(Message.idempotency_key == idempotency_key))
    if existing is not None:
        return existing
    measured = segments.measure(body)
    message = Message(direction="outbound", status="pending", line_id=line.id, member_id=member_id,
                      from_number=line.phone_number, to_number=to, body=body, urgent=urgent, kind=kind,
                      broadcast_id=broadcast_id, idempotency_key=idempotency_key,
                      encoding=measured.encoding, segments=measured.count)
    if send_at is not None and send_at > utcnow():
        message.status, message.send_after = "deferred", send_at
    try:
        with session.begin_nested():  # a concurrent caller with the same key may win the insert
            session.add(message)
    except IntegrityError:
        # The other caller's row, committed first (the unique key made this insert fail).
        return session.scalars(sa.select(Message).where(Message.idempotency_key == idempotency_key)).one()
    from telline.sms.delivery import deliver
    enqueue_after_commit(session, deliver, message.id, queue="urgent" if message.urgent else "default",
                         at=message.send_after, retry=retry_policy())
    return message
