"""The incoming-call flow: which line, which meeting, which code, which seat.

Domain code: takes plain values (the webhook parsed them), keeps the caller's
progress in the Call row (never in URLs), and returns an Answer that the
webhook renders with telline.twilio.twiml. Every path ends somewhere useful:
a meeting, the next meeting's time, or how to reach a person.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone
from telline.lines import line_for
from telline.models import (Call, ConferenceParticipant, Group, Line, MeetingOccurrence, MeetingSeries, Member,
                            utcnow)
from telline.scheduling.series import next_meeting
from telline.groups import is_active_member
from telline.texts import t, when
from telline.twilio.twiml import ConferenceSeat
from telline.voice import meetings
from telline.voice.lockout import Lockout

log = logging.getLogger(__name__)
MAX_CODE_TRIES = 3


@dataclasses.dataclass(frozen=True)
class Answer:
    kind: str  # see the webhook for how each kind sounds
    language: str
    group: str = ""
    seat: ConferenceSeat | None = None
    next_when: str | None = None  # the next meeting, said in the group's language and zone
    can_remind: bool = False


def receive_call(session: Session, *, call_sid: str, from_raw: str | None, to_raw: str | None,
                 status: str | None, base_url: str, lockout: Lockout, now: dt.datetime | None = None) -> Answer:
    answer = _receive_call(session, call_sid, from_raw, to_raw, status, base_url, lockout, now or utcnow())
    session.commit()  # one transaction per request: the call row and whatever was decided
    return answer


def _receive_call(session: Session, call_sid: str, from_raw: str | None, to_raw: str | None, status: str | None,
                  base_url: str, lockout: Lockout, now: dt.datetime) -> Answer:
    caller = phone.from_twilio(from_raw)
    line = line_for(session, phone.from_twilio(to_raw))
    call = _call_row(session, call_sid, caller, line, phone.from_twilio(to_raw), status)
    log.info("incoming call", extra={"call_sid": call_sid, "from": phone.mask(caller), "line_known": line is not None})
    if line is None:
        return Answer("unknown_line", "en")
    group = session.get(Group, line.group_id)
    if lockout.is_locked(caller, line.id):
        return Answer("locked_out", group.language)
    on_now = meetings.on_now(session, line, now)
    if not on_now:
        return _no_meeting(session, group, caller, now)
    known = _caller_id_series(session, call, group, on_now)
    if known is not None:
        series, start = known
        if series.host_pin:  # a facilitator is often a member too: give her a moment for the PIN
            return Answer("caller_id_welcome", group.language, group=group.name)
        return _admit(session, call, series, meetings.occurrence(session, series, start), "member",
                      base_url, group)
    return Answer("ask_code", group.language, group=group.name)


def _caller_id_series(session: Session, call: Call, group: Group, on_now):
    """The meeting a known member may join by caller ID alone (off by default: it can be spoofed)."""
    if not is_active_member(session, call.member_id, group.id):
        return None
    return next(((series, start) for series, start in on_now if series.caller_id_joins), None)


def enter_code(session: Session, *, call_sid: str, digits: str | None, base_url: str, lockout: Lockout,
               now: dt.datetime | None = None) -> Answer:
    """The caller pressed digits (or nothing: Digits absent means the prompt timed out)."""
    answer = _enter_code(session, call_sid, digits, base_url, lockout, now or utcnow())
    session.commit()
    return answer


def _enter_code(session: Session, call_sid: str, digits: str | None, base_url: str, lockout: Lockout,
                now: dt.datetime) -> Answer:
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid))
    line = session.get(Line, call.line_id) if call and call.line_id else None
    if call is None or line is None:
        return Answer("unknown_line", "en")  # a code for a call we never answered: start again
    group = session.get(Group, line.group_id)
    if lockout.is_locked(call.from_number, line.id):
        return Answer("locked_out", group.language)
    code = "".join(ch for ch in (digits or "") if ch.isdigit())
    on_now = meetings.on_now(session, line, now)
    for series, start in on_now:
        role = "host" if series.host_pin and code == series.host_pin else \
            "member" if code == series.access_code else None
        if role:
            return _admit(session, call, series, meetings.occurrence(session, series, start), role, base_url, group)
    if not on_now:  # the meeting ended while they typed
        return _no_meeting(session, group, call.from_number, now)
    if not code and call.code_attempts == 0:
        known = _caller_id_series(session, call, group, on_now)
        if known is not None:  # "press # to join": a caller-ID member who did not enter the host PIN
            series, start = known
            return _admit(session, call, series, meetings.occurrence(session, series, start), "member",
                          base_url, group)
    call.code_attempts += 1
    if code:
        locked = lockout.failed(call.from_number, line.id)
        log.warning("wrong meeting code", extra={"call_sid": call_sid, "from": phone.mask(call.from_number),
                                                 "attempt": call.code_attempts, "locked_out": locked})
        if locked:
            return Answer("locked_out", group.language)
    if call.code_attempts >= MAX_CODE_TRIES:
        return Answer("wrong_code_goodbye", group.language)
    return Answer("retry_code" if code else "no_code", group.language, group=group.name)


def name_recorded(session: Session, *, call_sid: str, recording_url: str | None, base_url: str) -> Answer:
    """Back from <Record>: keep the recording (if it is Twilio's) and let the caller in."""
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid))
    if call is None or call.occurrence_id is None:
        return Answer("unknown_line", "en")
    url = (recording_url or "").strip()
    if url.startswith("https://api.twilio.com/") and len(url) <= 500:  # never replay a URL we did not get from Twilio
        call.name_recording_url = url
    occurrence = session.get(MeetingOccurrence, call.occurrence_id)
    series = session.get(MeetingSeries, occurrence.series_id)
    answer = _admit(session, call, series, occurrence, call.role or "member", base_url,
                    session.get(Group, series.group_id), ask_name=False)
    session.commit()
    return answer


def _admit(session: Session, call: Call, series: MeetingSeries, occurrence: MeetingOccurrence, role: str,
           base_url: str, group: Group, ask_name: bool = True) -> Answer:
    language = group.language
    if occurrence.status == "cancelled":
        return _no_meeting(session, group, call.from_number, utcnow(), after=occurrence.ends_at)
    if occurrence.status == "ended":
        return Answer("meeting_ended", language)
    if role != "host":
        if occurrence.locked:
            return Answer("meeting_locked", language)
        present = session.scalar(sa.select(sa.func.count(ConferenceParticipant.id)).where(
            ConferenceParticipant.occurrence_id == occurrence.id, ConferenceParticipant.joined_at.is_not(None),
            ConferenceParticipant.left_at.is_(None)))
        if present >= series.max_participants:
            return Answer("meeting_full", language)
    call.occurrence_id, call.role = occurrence.id, role
    if ask_name and series.record_names and role == "member":
        return Answer("record_name", language)  # then back through name_recorded()
    seat = ConferenceSeat(
        name=occurrence.conference_name, host=role == "host",
        end_on_exit=role == "host" and series.host_leaving_ends,
        max_participants=max(2, min(series.max_participants, 250)), beep=series.announce_entries,
        wait_url=series.wait_url, status_callback=f"{base_url}/twilio/voice/conference", record=series.record,
        label=f"{role}-{call.id}",  # ids only: labels show in Twilio's console
        before=(t("voice.recorded", language),) if series.record else (),
        after=t("voice.after_meeting", language))
    log.info("caller admitted", extra={"call_sid": call.twilio_sid, "occurrence_id": occurrence.id, "role": role})
    return Answer("join", language, group=group.name, seat=seat)


def _no_meeting(session: Session, group: Group, caller: str | None, now: dt.datetime,
                after: dt.datetime | None = None) -> Answer:
    found = next_meeting(session, group, after or now)
    if found is None:
        return Answer("no_meeting_planned", group.language, group=group.name)
    _, start = found
    return Answer("next_meeting", group.language, group=group.name,
                  next_when=when(start, group.timezone, group.language), can_remind=caller is not None)


def _call_row(session: Session, call_sid: str, caller: str | None, line: Line | None, called: str | None,
              status: str | None) -> Call:
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid))
    if call is None:  # a retried webhook finds its row and changes nothing
        member_id = session.scalar(sa.select(Member.id).where(Member.phone == caller)) if caller else None
        call = Call(twilio_sid=call_sid, direction="inbound", line_id=line.id if line else None,
                    member_id=member_id, from_number=caller, to_number=called,
                    status=(status or "ringing")[:16])
        session.add(call)
        session.flush()  # committed with the rest of the request
    return call



def dialled_answered(session: Session, *, call_sid: str) -> Answer:
    """A member we dialled picked up: ask for a 1 first (a voicemail never presses it)."""
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid, Call.direction == "outbound"))
    if call is None or call.occurrence_id is None:
        return Answer("unknown_line", "en")
    group = _group_of(session, call)
    return Answer("dialout_prompt", group.language, group=group.name)


def dialled_pressed(session: Session, *, call_sid: str, digits: str | None, base_url: str) -> Answer:
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid, Call.direction == "outbound"))
    if call is None or call.occurrence_id is None:
        return Answer("unknown_line", "en")
    group = _group_of(session, call)
    if (digits or "").strip() != "1":
        return Answer("goodbye", group.language)
    occurrence = session.get(MeetingOccurrence, call.occurrence_id)
    answer = _admit(session, call, session.get(MeetingSeries, occurrence.series_id), occurrence, "member",
                    base_url, group)
    session.commit()
    return answer


def _group_of(session: Session, call: Call) -> Group:
    occurrence = session.get(MeetingOccurrence, call.occurrence_id)
    return session.get(Group, session.get(MeetingSeries, occurrence.series_id).group_id)
