"""What coordinators need to see about texts that do not arrive (CLI now, web page later)."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone
from telline.models import Member, Membership, Message


@dataclasses.dataclass(frozen=True)
class Failure:
    member_id: int
    number: str  # masked
    problem: str  # the member's SMS status, or "failing" when recent texts failed
    detail: str


def failures(session: Session, group_id: int | None = None) -> list[Failure]:
    """Members flagged (invalid, landline, unreachable) or whose last text failed."""
    members = sa.select(Member)
    if group_id is not None:
        members = members.join(Membership, (Membership.member_id == Member.id) & (Membership.group_id == group_id))
    out = []
    for member in session.scalars(members.order_by(Member.id)):
        last = session.scalar(sa.select(Message).where(Message.member_id == member.id,
                                                       Message.direction == "outbound")
                              .order_by(Message.id.desc()).limit(1))
        if member.sms_status != "ok":
            out.append(Failure(member.id, phone.mask(member.phone), member.sms_status, member.sms_status_detail))
        elif last is not None and last.status in ("failed", "undelivered", "refused"):
            out.append(Failure(member.id, phone.mask(member.phone), last.status,
                               f"{last.error_code or ''} {last.error_message or ''}".strip()))
    return out
