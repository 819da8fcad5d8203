"""Texts that control a live meeting from the same phone (key presses cannot reach a
running conference). A member: MUTE, UNMUTE, HAND. A host: MUTEALL, LOCK, UNLOCK, END MEETING.
The words are in telline.sms.keywords, with every other word telline answers.

Plain END is not a control: it is a carrier opt-out word (Twilio would unsubscribe the
host), so ending a meeting by text takes END MEETING / FIN REUNION.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone
from telline.groups import is_active_member
from telline.models import Call, ConferenceParticipant, MeetingOccurrence, OccurrenceStatus, utcnow
from telline.scheduling.series import next_meeting
from telline.sms.handlers import reply
from telline.sms.keywords import Keyword, Kind
from telline.sms.outbound import send_text
from telline.sms.router import Inbound, Router
from telline.texts import t
from telline.voice import moderation
from telline.voice.roster import caller_number, roster

log = logging.getLogger(__name__)

MEMBER_CONTROLS: frozenset[Kind] = frozenset({"mute", "unmute", "hand"})
HOST_CONTROLS: frozenset[Kind] = frozenset({"mute_all", "lock", "unlock", "end_meeting"})


def install(router: Router) -> None:
    # After the SMS line's own keywords (opt-out first, always), before anything that claims free
    # text: these are keywords of their own and claim only them.
    router.add(60, "meeting_controls", meeting_controls)


def meeting_controls(session: Session, inbound: Inbound) -> bool:
    keyword = inbound.keyword
    if keyword is None or keyword.kind not in MEMBER_CONTROLS | HOST_CONTROLS or inbound.sender is None:
        return False
    control = keyword.kind
    found = _on_a_live_meeting(session, inbound.sender)
    if found is None:
        _not_in_a_meeting(session, inbound, keyword)
        return True
    me, occurrence_id = found
    if control in HOST_CONTROLS and me.role != "host":
        reply(session, inbound, "sms.control_hosts_only")
        return True
    if control in ("mute", "unmute"):
        moderation.act_on_participant(session, me.id, control)
    elif control == "hand":
        me.hand_raised = not me.hand_raised
        _tell_hosts(session, me, occurrence_id, inbound)
    elif control == "mute_all":
        moderation.mute_all(session, occurrence_id)
    elif control in ("lock", "unlock"):
        moderation.set_locked(session, occurrence_id, control == "lock")
    elif control == "end_meeting":
        moderation.end_meeting(session, occurrence_id)
    reply(session, inbound, f"sms.control_{control}" + ("_up" if control == "hand" and me.hand_raised else ""))
    log.info("meeting control by text", extra={"command": control, "occurrence_id": occurrence_id})
    return True


def _not_in_a_meeting(session: Session, inbound: Inbound, keyword: Keyword) -> None:
    """The sender is on no live meeting: say that the word works only during one, and tell a member
    of the group how to join one. Nothing for the inbox: they asked the line, not a person."""
    group, member = inbound.group, inbound.member
    found = None
    if group is not None and is_active_member(session, member.id if member else None, group.id):
        found = next_meeting(session, group, utcnow())
    log.info("meeting control from someone not in a meeting", extra={"command": keyword.kind})
    if found is None:
        reply(session, inbound, "sms.control_not_in_a_meeting", word=keyword.word)
        return
    series, _ = found
    reply(session, inbound, "sms.control_not_in_a_meeting_join", word=keyword.word,
          number=phone.for_display(series.line.phone_number))


def _on_a_live_meeting(session: Session, number: str) -> tuple[ConferenceParticipant, int] | None:
    """The sender's place in a live meeting, and that meeting's occurrence id."""
    found = session.execute(
        sa.select(ConferenceParticipant, MeetingOccurrence.id)
        .join(Call, Call.twilio_sid == ConferenceParticipant.call_sid)
        .join(MeetingOccurrence, MeetingOccurrence.id == ConferenceParticipant.occurrence_id)
        .where(caller_number(Call) == number, ConferenceParticipant.left_at.is_(None),
               ConferenceParticipant.joined_at.is_not(None), MeetingOccurrence.status == OccurrenceStatus.LIVE)
        .order_by(ConferenceParticipant.id.desc()).limit(1)).first()
    if found is None:
        return None
    participant, occurrence_id = found
    return participant, occurrence_id


def _tell_hosts(session: Session, me: ConferenceParticipant, occurrence_id: int, inbound: Inbound) -> None:
    shown = next((line.shown_as for line in roster(session, occurrence_id) if line.participant_id == me.id), "")
    for host in session.scalars(sa.select(ConferenceParticipant).where(
            ConferenceParticipant.occurrence_id == occurrence_id, ConferenceParticipant.role == "host",
            ConferenceParticipant.left_at.is_(None))):
        number = session.scalar(sa.select(caller_number(Call)).where(Call.twilio_sid == host.call_sid))
        if number and inbound.line is not None:
            key = "hand_up" if me.hand_raised else "hand_down"
            send_text(session, line=inbound.line, to=number, urgent=True, kind="host_alert",
                      idempotency_key=f"hand:{inbound.message.twilio_sid}:{host.id}",
                      body=t(f"sms.host_{key}", inbound.language, who=shown))
