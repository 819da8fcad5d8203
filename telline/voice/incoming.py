"""The incoming-call decision: which line was called, who is calling, what they hear.

Domain code: takes plain values (already parsed by the webhook), writes rows,
returns a decision that telline.twilio.twiml renders.
"""

from __future__ import annotations

import dataclasses
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone
from telline.lines import line_for
from telline.models import Call, Member

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Answer:
    kind: str  # "unknown_line" | "no_meeting"
    language: str


def receive_call(session: Session, *, call_sid: str, from_raw: str | None, to_raw: str | None,
                 status: str | None) -> Answer:
    caller = phone.from_twilio(from_raw)
    called = phone.from_twilio(to_raw)
    line = line_for(session, called)
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid))
    if call is None:  # a retried webhook finds its row and changes nothing
        member_id = session.scalar(sa.select(Member.id).where(Member.phone == caller)) if caller else None
        session.add(Call(twilio_sid=call_sid, direction="inbound", line_id=line.id if line else None,
                         member_id=member_id, from_number=caller, to_number=called,
                         status=(status or "ringing")[:16]))
        session.commit()
    log.info("incoming call", extra={"call_sid": call_sid, "from": phone.mask(caller),
                                     "line_known": line is not None})
    if line is None:
        return Answer("unknown_line", "en")
    return Answer("no_meeting", line.group.language)
