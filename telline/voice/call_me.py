""""Call me at meeting time": a member's choice, made by text (CALL ME / NO CALL, APPELEZ-MOI /
PAS D'APPEL) and kept in their preferences; telline.voice.dialout dials those who chose it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from telline.models import Member
from telline.sms.handlers import reply
from telline.sms.router import Inbound, Router

PREFERENCE = "call_me"


def wants_a_call(member: Member) -> bool:
    return bool((member.preferences or {}).get(PREFERENCE))


def install(router: Router) -> None:
    # A keyword like the meeting controls (60), after the SMS line's own and before free text.
    router.add(70, "call_me", call_me_by_text)


def call_me_by_text(session: Session, inbound: Inbound) -> bool:
    kind = inbound.keyword.kind if inbound.keyword else None
    if kind not in ("call_me", "no_call") or inbound.member is None:
        return False  # not a member yet: the text goes to a person
    wanted = kind == "call_me"
    member = inbound.member
    member.preferences = {**(member.preferences or {}), PREFERENCE: wanted}
    reply(session, inbound, "sms.call_me_on" if wanted else "sms.call_me_off")
    return True
