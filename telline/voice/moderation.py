"""Moderating a live meeting: the service a host's page (later) and texts (now) call.

Each action that needs Twilio is a job on the urgent queue, taking ids and
re-reading its rows; the roster changes when Twilio's callbacks say so, not when we
ask. Locking is ours alone: new callers are refused at the door (telline.voice.incoming).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import sqlalchemy as sa
from flask import current_app
from rq import Retry
from sqlalchemy.orm import Session

from telline import db
from telline.models import Announcement, Call, ConferenceParticipant, MeetingOccurrence, OccurrenceStatus, utcnow
from telline.tasks import durable, enqueue_after_commit
from telline.twilio.gateway import TwilioError, gateway

log = logging.getLogger(__name__)
ParticipantAction = Literal["mute", "unmute", "hold", "unhold", "kick"]
PARTICIPANT_ACTIONS: tuple[ParticipantAction, ...] = ("mute", "unmute", "hold", "unhold", "kick")
# What a moderation job did: the request was made, its target was gone, Twilio refused it, or
# there was nothing to do (the meeting is no longer live, or ended by itself).
Outcome = Literal["done", "gone", "refused", "skipped", "nothing to end"]
_RETRY = Retry(max=3, interval=[1, 3, 9])  # a host is waiting: retry fast, give up soon


class ModerationError(ValueError):
    pass


# --- the service ------------------------------------------------------------------
def act_on_participant(session: Session, participant_id: int, action: str) -> None:
    if action not in PARTICIPANT_ACTIONS:  # from a page or a text: say so, in the caller
        raise ModerationError(f"unknown action {action!r}")
    p = session.get(ConferenceParticipant, participant_id)
    if p is None or p.left_at is not None:
        raise ModerationError("that caller is no longer in the meeting")
    enqueue_after_commit(session, participant_job, participant_id, action, queue="urgent", retry=_RETRY)


def mute_all(session: Session, occurrence_id: int) -> None:
    _live(session, occurrence_id)
    enqueue_after_commit(session, mute_all_job, occurrence_id, queue="urgent", retry=_RETRY)


def set_locked(session: Session, occurrence_id: int, locked: bool) -> None:
    _live(session, occurrence_id).locked = locked


def announce(session: Session, occurrence_id: int, text: str) -> Announcement:
    text = " ".join((text or "").split())
    if not text or len(text) > 500:
        raise ModerationError("an announcement has 1 to 500 characters")
    _live(session, occurrence_id)
    row = Announcement(occurrence_id=occurrence_id, text=text)
    session.add(row)
    session.flush()
    enqueue_after_commit(session, announce_job, row.id, queue="urgent", retry=_RETRY)
    return row


def end_meeting(session: Session, occurrence_id: int) -> None:
    """End the meeting for everyone: the one explicit end (a conference that empties ends only
    itself). Members calling later hear it has ended; its host may restart it within its slot."""
    occurrence = session.get(MeetingOccurrence, occurrence_id)
    if occurrence is None or occurrence.status in (OccurrenceStatus.ENDED, OccurrenceStatus.CANCELLED):
        raise ModerationError("that meeting is over")
    occurrence.status, occurrence.ended_at = OccurrenceStatus.ENDED, utcnow()
    if occurrence.conference_sid:
        enqueue_after_commit(session, end_job, occurrence_id, queue="urgent", retry=_RETRY)


def _live(session: Session, occurrence_id: int) -> MeetingOccurrence:
    occurrence = session.get(MeetingOccurrence, occurrence_id)
    if occurrence is None or occurrence.status != OccurrenceStatus.LIVE or not occurrence.conference_sid:
        raise ModerationError("that meeting is not live")
    return occurrence


# --- the jobs (ids in, rows re-read) ------------------------------------------------
@durable
def participant_job(participant_id: int, action: ParticipantAction) -> Outcome | Retry:
    p = db.session().get(ConferenceParticipant, participant_id)
    if p is None or p.left_at is not None:
        return "gone"
    if action == "kick":
        return _twilio(lambda: gateway().remove_participant(p.conference_sid, p.call_sid), action)
    fields = {"mute": {"muted": True}, "unmute": {"muted": False},
              "hold": {"hold": True}, "unhold": {"hold": False}}[action]
    return _twilio(_update_participant(p, **fields), action)


@durable
def mute_all_job(occurrence_id: int) -> int | Retry:
    session = db.session()
    present = session.scalars(sa.select(ConferenceParticipant).where(
        ConferenceParticipant.occurrence_id == occurrence_id, ConferenceParticipant.left_at.is_(None),
        ConferenceParticipant.joined_at.is_not(None), ConferenceParticipant.role != "host",
        ConferenceParticipant.muted.is_(False)))
    done = 0
    for p in present:
        outcome = _twilio(_update_participant(p, muted=True), "mute")
        if isinstance(outcome, Retry):
            return outcome  # all again later: muting one already muted is harmless
        done += outcome == "done"
    return done


@durable
def announce_job(announcement_id: int) -> Outcome | Retry:
    session = db.session()
    row = session.get_one(Announcement, announcement_id)  # written with this job's task
    occurrence = session.get_one(MeetingOccurrence, row.occurrence_id)
    conference_sid = occurrence.conference_sid
    public = current_app.config["TELLINE"].public_url
    if not public or occurrence.status != OccurrenceStatus.LIVE or conference_sid is None:
        return "skipped"
    return _twilio(lambda: gateway().update_conference(
        conference_sid, announce_url=f"{public}/twilio/voice/announcement/{row.id}",
        announce_method="POST"), "announce")


@durable
def announce_name_job(call_id: int) -> Outcome | Retry:
    """Play a caller's recorded first name to the room as they join (the record_names option)."""
    session = db.session()
    call = session.get(Call, call_id)
    if call is None or call.occurrence_id is None or not call.name_recording_url:
        return "skipped"
    occurrence = session.get_one(MeetingOccurrence, call.occurrence_id)
    conference_sid = occurrence.conference_sid
    public = current_app.config["TELLINE"].public_url
    if occurrence.status != OccurrenceStatus.LIVE or conference_sid is None or not public:
        return "skipped"
    return _twilio(lambda: gateway().update_conference(
        conference_sid, announce_url=f"{public}/twilio/voice/name-announcement/{call.id}",
        announce_method="POST"), "announce")


@durable
def end_job(occurrence_id: int) -> Outcome | Retry:
    """Hang up the conference of a meeting that was ended (everyone hears the goodbye)."""
    occurrence = db.session().get_one(MeetingOccurrence, occurrence_id)
    conference_sid = occurrence.conference_sid
    if occurrence.status != OccurrenceStatus.ENDED or not conference_sid:
        return "nothing to end"  # restarted by its host since, or its conference ended by itself
    return _twilio(lambda: gateway().update_conference(conference_sid, status="completed"), "end")


def _update_participant(p: ConferenceParticipant, **fields: bool) -> Callable[[], object]:
    """The request that changes one participant, to make later: bound to this participant now
    (a lambda written in a loop would see the loop's last one)."""
    conference_sid, call_sid = p.conference_sid, p.call_sid
    return lambda: gateway().update_participant(conference_sid, call_sid, **fields)


def _twilio(call: Callable[[], object], action: str) -> Outcome | Retry:
    """Make one request; "done", "gone" or "refused" — or RQ's Retry, returned rather than raised
    so that RQ retries the job with one log line (ours), not a traceback per attempt."""
    db.session().commit()  # rows are read: hold no transaction while Twilio answers
    try:
        call()
    except TwilioError as exc:
        if exc.status == 404:  # the caller hung up, or the conference ended, meanwhile
            log.info("moderation target gone", extra={"action": action})
            return "gone"
        if exc.retryable:
            log.warning("could not reach Twilio; will retry" if exc.unreachable else "Twilio asked to retry",
                        extra={"action": action, "status": exc.status, "code": exc.code})
            return _RETRY
        log.warning("moderation refused", extra={"action": action, "code": exc.code, "reason": exc.message})
        return "refused"
    return "done"
