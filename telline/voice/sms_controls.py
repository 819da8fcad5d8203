"""Texts that control a live meeting from the same phone (key presses cannot reach a
running conference). A member: MUTE, UNMUTE, HAND. A host: MUTEALL, LOCK, UNLOCK, END MEETING.

Plain END is not a control: it is a carrier opt-out word (Twilio would unsubscribe the
host), so ending a meeting by text takes END MEETING / FIN REUNION.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline.models import Call, ConferenceParticipant, MeetingOccurrence
from telline.sms.handlers import reply
from telline.sms.keywords import normalise
from telline.sms.outbound import send_text
from telline.sms.router import Inbound, Router
from telline.texts import t
from telline.voice import moderation
from telline.voice.roster import caller_number, roster

log = logging.getLogger(__name__)

MEMBER_WORDS = {"MUTE": "mute", "MUET": "mute", "SILENCE": "mute", "UNMUTE": "unmute", "PARLER": "unmute",
                "MICRO": "unmute", "HAND": "hand", "MAIN": "hand"}
HOST_WORDS = {"MUTEALL": "mute_all", "MUTE ALL": "mute_all", "MUETS": "mute_all", "SILENCE TOUS": "mute_all",
              "LOCK": "lock", "VERROUILLER": "lock", "UNLOCK": "unlock", "DEVERROUILLER": "unlock",
              "END MEETING": "end", "ENDMEETING": "end", "FIN REUNION": "end", "FIN DE REUNION": "end"}


def install(router: Router) -> None:
    router.add(45, "meeting_controls", meeting_controls)


def meeting_controls(session: Session, inbound: Inbound) -> bool:
    word = normalise(inbound.message.body)
    command = MEMBER_WORDS.get(word) or HOST_WORDS.get(word)
    if command is None or inbound.sender is None:
        return False
    me = _on_a_live_meeting(session, inbound.sender)
    if me is None:
        return False  # not on a call now: the text is for someone else (the inbox)
    if command in HOST_WORDS.values() and me.role != "host":
        reply(session, inbound, "sms.control_hosts_only")
        return True
    if command in ("mute", "unmute"):
        moderation.act_on_participant(session, me.id, command)
    elif command == "hand":
        me.hand_raised = not me.hand_raised
        _tell_hosts(session, me, inbound)
    elif command == "mute_all":
        moderation.mute_all(session, me.occurrence_id)
    elif command in ("lock", "unlock"):
        moderation.set_locked(session, me.occurrence_id, command == "lock")
    elif command == "end":
        moderation.end_meeting(session, me.occurrence_id)
    reply(session, inbound, f"sms.control_{command}" + ("_up" if command == "hand" and me.hand_raised else ""))
    log.info("meeting control by text", extra={"command": command, "occurrence_id": me.occurrence_id})
    return True


def _on_a_live_meeting(session: Session, number: str) -> ConferenceParticipant | None:
    return session.scalar(
        sa.select(ConferenceParticipant)
        .join(Call, Call.twilio_sid == ConferenceParticipant.call_sid)
        .join(MeetingOccurrence, MeetingOccurrence.id == ConferenceParticipant.occurrence_id)
        .where(caller_number(Call) == number, ConferenceParticipant.left_at.is_(None),
               ConferenceParticipant.joined_at.is_not(None), MeetingOccurrence.status == "live")
        .order_by(ConferenceParticipant.id.desc()).limit(1))


def _tell_hosts(session: Session, me: ConferenceParticipant, inbound: Inbound) -> None:
    shown = next((line.shown_as for line in roster(session, me.occurrence_id) if line.participant_id == me.id), "")
    for host in session.scalars(sa.select(ConferenceParticipant).where(
            ConferenceParticipant.occurrence_id == me.occurrence_id, ConferenceParticipant.role == "host",
            ConferenceParticipant.left_at.is_(None))):
        number = session.scalar(sa.select(caller_number(Call)).where(Call.twilio_sid == host.call_sid))
        if number and inbound.line is not None:
            key = "hand_up" if me.hand_raised else "hand_down"
            send_text(session, line=inbound.line, to=number, urgent=True, kind="host_alert",
                      idempotency_key=f"hand:{inbound.message.twilio_sid}:{host.id}",
                      body=t(f"sms.host_{key}", inbound.language, who=shown))
