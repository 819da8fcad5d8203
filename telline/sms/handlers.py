"""The built-in answers to incoming texts: STOP, START/YES, HELP, JOIN, NEXT, and the inbox.

Each handler returns True when the text is its own. Replies go through the outbound
pipeline as urgent texts (a person is waiting), keyed on the incoming MessageSid so
a retried webhook cannot answer twice.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone
from telline.groups import is_active_member
from telline.models import ConsentSource, Group, InboxItem, Member, Membership, MessageKind, utcnow
from telline.scheduling.series import next_meeting
from telline.sms import consent, outbound
from telline.sms.keywords import Keyword, Kind
from telline.sms.router import Inbound, Router
from telline.texts import t, when

log = logging.getLogger(__name__)


def install(router: Router) -> None:
    router.add(10, "opt_out", opt_out)
    router.add(20, "opt_in", opt_in)
    router.add(30, "help", help_)
    router.add(40, "join", join)
    router.add(50, "next", next_)
    router.add(1000, "inbox", inbox)


def reply(session: Session, inbound: Inbound, key: str, *, kind: MessageKind = "reply", **values: object) -> None:
    """Answer the sender on the line they texted, in their language."""
    if inbound.sender is None or inbound.line is None:
        return  # anonymous sender, or a number that is not ours: nobody to answer
    outbound.send_text(session, line=inbound.line, to=inbound.sender, body=t(key, inbound.language, **values),
                       idempotency_key=f"reply:{inbound.message.twilio_sid}", urgent=True, kind=kind,
                       member_id=inbound.member.id if inbound.member else None)


def _keyword(inbound: Inbound, kind: Kind) -> Keyword | None:
    """The text's keyword when it is of this kind."""
    return inbound.keyword if inbound.keyword is not None and inbound.keyword.kind == kind else None


def opt_out(session: Session, inbound: Inbound) -> bool:
    keyword = _keyword(inbound, "opt_out")
    if keyword is None:
        return False
    if inbound.sender:
        source: ConsentSource = "advanced_opt_out" if inbound.opt_out_type else "keyword"
        consent.record(session, inbound.sender, consent.OPT_OUT, source,
                       group_id=inbound.group.id if inbound.group else None, detail=keyword.word)
        if not inbound.opt_out_type:  # Twilio already confirmed it otherwise: never answer twice
            reply(session, inbound, "sms.opted_out", kind="opt_out_confirmation")
    return True


def opt_in(session: Session, inbound: Inbound) -> bool:
    keyword = _keyword(inbound, "opt_in")
    if keyword is None:
        return False
    if not inbound.sender:
        return True
    pending = _pending_memberships(session, inbound.member)
    if (keyword.word in ("YES", "OUI") and not pending
            and not consent.is_opted_out(session, inbound.sender)):
        return False  # a plain "yes" answering a person or a check-in, not a consent change
    consent.record(session, inbound.sender, consent.OPT_IN, "keyword",
                   group_id=pending[0].group_id if pending else (inbound.group.id if inbound.group else None),
                   detail=keyword.word)
    if pending:  # "reply YES to join": this is that YES
        for membership in pending:
            membership.status, membership.joined_at = "active", utcnow()
        reply(session, inbound, "sms.join_welcome", group=pending[0].group.name)
    elif inbound.opt_out_type != "START":  # Twilio confirmed a START itself
        reply(session, inbound, "sms.opted_in")
    return True


def help_(session: Session, inbound: Inbound) -> bool:
    # Answered even when Twilio's Advanced Opt-Out answered HELP: ours carries the crisis line.
    if _keyword(inbound, "help") is None:
        return False
    group = inbound.group
    language = inbound.language
    reply(session, inbound, "sms.help", group=group.name if group else "telline",
          contact=(group.coordinator_contact if group and group.coordinator_contact
                   else t("sms.help_no_contact", language)),
          crisis=_crisis(group, language))
    return True


def join(session: Session, inbound: Inbound) -> bool:
    keyword = _keyword(inbound, "join")
    if keyword is None:
        return False
    code = keyword.argument
    if not inbound.sender:
        return True
    if not code:
        reply(session, inbound, "sms.join_which")
        return True
    group = session.scalar(sa.select(Group).where(Group.text_code == code))
    if group is None:
        reply(session, inbound, "sms.join_unknown", code=code)
        return True
    member = inbound.member or _new_member(session, inbound, inbound.sender, keyword)
    membership = session.scalar(sa.select(Membership).where(
        Membership.member_id == member.id, Membership.group_id == group.id))
    if membership is not None and membership.status == "active":
        reply(session, inbound, "sms.join_already", group=group.name)
        return True
    if membership is None:
        membership = Membership(member_id=member.id, group_id=group.id)
        session.add(membership)
    if group.join_needs_confirmation:
        membership.status = "pending"
        reply(session, inbound, "sms.join_confirm", group=group.name)
    else:  # the group takes the JOIN text itself as consent
        membership.status, membership.joined_at = "active", utcnow()
        consent.record(session, inbound.sender, consent.OPT_IN, "keyword", group_id=group.id,
                       detail=f"JOIN {code}")
        reply(session, inbound, "sms.join_welcome", group=group.name)
    return True


def next_(session: Session, inbound: Inbound) -> bool:
    if _keyword(inbound, "next") is None:
        return False
    group = inbound.group
    if group is None or not is_active_member(session, inbound.member.id if inbound.member else None, group.id):
        reply(session, inbound, "sms.next_members_only")  # the dial-in code is for members only
        return True
    found = next_meeting(session, group, utcnow())
    if found is None:
        reply(session, inbound, "sms.next_none", group=group.name)
        return True
    series, start = found
    zone = (inbound.member.timezone if inbound.member and inbound.member.timezone else None) or group.timezone
    reply(session, inbound, "sms.next", group=group.name, when=when(start, zone, inbound.language),
          number=phone.for_display(series.line.phone_number), code=series.access_code)
    return True


def inbox(session: Session, inbound: Inbound) -> bool:
    """Anything no one else claimed: a coordinator reads it; the sender hears that one will."""
    session.add(InboxItem(message_id=inbound.message.id, group_id=inbound.group.id if inbound.group else None,
                          member_id=inbound.member.id if inbound.member else None))
    reply(session, inbound, "sms.inbox_ack", crisis=_crisis(inbound.group, inbound.language))
    log.info("text for the coordinators' inbox", extra={"message_id": inbound.message.id,
                                                        "from": phone.mask(inbound.sender)})
    return True


# --- helpers ----------------------------------------------------------------------
def _crisis(group: Group | None, language: str) -> str:
    if group is None or not group.crisis_resource:
        return ""
    return t("sms.crisis", language, resource=group.crisis_resource)


def _pending_memberships(session: Session, member: Member | None) -> list[Membership]:
    if member is None:
        return []
    return list(session.scalars(sa.select(Membership).where(
        Membership.member_id == member.id, Membership.status == "pending").order_by(Membership.id)))


def _new_member(session: Session, inbound: Inbound, sender: str, keyword: Keyword) -> Member:
    member = Member(phone=sender, language=keyword.language)
    session.add(member)
    session.flush()
    inbound.member = member
    inbound.message.member_id = member.id
    return member
