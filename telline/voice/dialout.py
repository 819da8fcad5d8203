"""Dial-out: members who asked to be called (telline.voice.call_me) are dialled when the meeting starts.

They must press 1 before they enter (so a voicemail never joins the room), and get
a text with the dial-in details when the call does not reach them.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from telline import db, phone
from telline.models import Call, ConferenceParticipant, MeetingOccurrence, Member, Membership
from telline.sms import consent
from telline.sms.outbound import send_text
from telline.tasks import durable
from telline.texts import t
from telline.twilio.gateway import TwilioError, gateway
from telline.voice.call_me import wants_a_call

log = logging.getLogger(__name__)
UNREACHED = ("busy", "no-answer", "failed", "canceled")

@durable
def dial_out_members(occurrence_id: int) -> int:
    """Job: dial every member of the group who asked to be called. Safe to run twice."""
    session = db.session()
    occurrence = session.get_one(MeetingOccurrence, occurrence_id)  # enqueued as it started
    series = occurrence.series
    line = series.line
    public = current_app.config["TELLINE"].public_url
    if not public:
        log.warning("dial-out needs TELLINE_PUBLIC_URL (Twilio must fetch the call's instructions)")
        return 0
    already = set(session.scalars(sa.select(Call.member_id).where(
        Call.occurrence_id == occurrence.id, Call.direction == "outbound")))
    members = list(session.scalars(sa.select(Member).join(Membership, (Membership.member_id == Member.id)
                                                          & (Membership.group_id == series.group_id)
                                                          & (Membership.status == "active")).order_by(Member.id)))
    dialled = 0
    for member in members:
        if not wants_a_call(member) or member.id in already:
            continue
        if consent.current(session, member.phone, channel="voice") == consent.OPT_OUT:
            continue
        session.commit()  # hold no transaction while Twilio answers
        try:
            call = gateway().create_call(from_=line.phone_number, to=member.phone,
                                         url=f"{public}/twilio/voice/dialout/answer",
                                         status_callback=f"{public}/twilio/voice/dialout/status",
                                         status_callback_event=["completed"], timeout=30)
        except TwilioError as exc:
            log.warning("dial-out refused", extra={"member_id": member.id, "code": exc.code})
            _text_dial_in(session, occurrence, member, f"dialout-failed:{occurrence.id}:{member.id}")
            continue
        session.add(Call(twilio_sid=call.sid, direction="outbound", line_id=line.id, member_id=member.id,
                         from_number=line.phone_number, to_number=member.phone, status="queued",
                         occurrence_id=occurrence.id, role="member"))
        session.commit()
        dialled += 1
    log.info("dialled members", extra={"occurrence_id": occurrence.id, "count": dialled})
    return dialled


def call_ended(session: Session, *, call_sid: str, status: str) -> bool:
    """A dialled call ended. True when the member was not reached and was texted instead."""
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid, Call.direction == "outbound"))
    if call is None or call.occurrence_id is None:
        return False
    call.status = status[:16]
    joined = session.scalar(sa.select(ConferenceParticipant.id).where(ConferenceParticipant.call_sid == call_sid))
    reached = status not in UNREACHED and joined is not None
    member = session.get(Member, call.member_id) if call.member_id else None  # who was dialled
    if not reached and member is not None:
        _text_dial_in(session, session.get_one(MeetingOccurrence, call.occurrence_id), member,
                      f"dialout-missed:{call_sid}")
    session.commit()
    return not reached


def _text_dial_in(session: Session, occurrence: MeetingOccurrence, member: Member, key: str) -> None:
    series = occurrence.series
    group, line = series.group, series.line
    number = phone.for_display(line.phone_number)
    language = member.language or group.language
    send_text(session, line=line, to=member.phone, idempotency_key=key, member_id=member.id, urgent=True,
              kind="dialout_missed", body=t("sms.dialout_missed", language, group=group.name, number=number,
                                            code=series.access_code))
    log.info("member not reached by phone: texted the dial-in", extra={"to": phone.mask(member.phone)})
