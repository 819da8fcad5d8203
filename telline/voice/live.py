"""A coordinator at a live meeting: what they may see and do, in one place for the console and the API.

The roster is what Twilio's callbacks last said (telline.voice.roster); an action asks Twilio through
the urgent lane (telline.voice.moderation) and the roster changes when Twilio confirms it, never
before. Every action is one audit line (who, what, which participant by id: never a name or number).
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.orm import Session

from telline.accounts import access, audit
from telline.models import ConferenceParticipant, MeetingOccurrence, OccurrenceStatus, User, utcnow
from telline.voice import moderation
from telline.voice.roster import RosterLine, roster

MEETING_ACTIONS = ("mute-all", "lock", "unlock", "end")


@dataclasses.dataclass(frozen=True)
class LiveMeeting:
    occurrence: MeetingOccurrence
    title: str
    group_id: int
    status: OccurrenceStatus
    present: list[RosterLine]  # raised hands first, then hosts, then in the order they joined
    left: int  # how many have left since it started

    @property
    def live(self) -> bool:
        return self.status == OccurrenceStatus.LIVE


def _occurrence_for(session: Session, user: User, occurrence_id: int) -> MeetingOccurrence:
    occurrence = session.get(MeetingOccurrence, occurrence_id)
    if occurrence is None or not access.can_see_group(session, user, occurrence.series.group_id):
        raise access.NotFound(f"There is no meeting {occurrence_id}.")
    return occurrence


def live_meeting(session: Session, user: User, occurrence_id: int) -> LiveMeeting:
    occurrence = _occurrence_for(session, user, occurrence_id)
    everyone = roster(session, occurrence_id)
    present = sorted((line for line in everyone if line.present),
                     key=lambda line: (not line.hand_raised, line.role != "host", line.joined_at, line.participant_id))
    return LiveMeeting(occurrence, occurrence.series.title, occurrence.series.group_id,
                       occurrence.status_at(utcnow()), present, sum(1 for line in everyone if line.left_at))


def act_on_participant(session: Session, user: User, occurrence_id: int, participant_id: int, action: str) -> None:
    occurrence = _occurrence_for(session, user, occurrence_id)
    participant = session.get(ConferenceParticipant, participant_id)
    if participant is None or participant.occurrence_id != occurrence.id:
        raise moderation.ModerationError("that caller is no longer in the meeting")
    moderation.act_on_participant(session, participant_id, action)
    audit.record(session, user, f"meeting.{action}", group_id=occurrence.series.group_id,
                 target_type="participant", target_id=participant_id, detail={"occurrence_id": occurrence.id})


def act_on_meeting(session: Session, user: User, occurrence_id: int, action: str) -> None:
    occurrence = _occurrence_for(session, user, occurrence_id)
    if action == "mute-all":
        moderation.mute_all(session, occurrence.id)
    elif action in ("lock", "unlock"):
        moderation.set_locked(session, occurrence.id, action == "lock")
    elif action == "end":
        moderation.end_meeting(session, occurrence.id)
    else:
        raise moderation.ModerationError(f"unknown action {action!r}")
    audit.record(session, user, "meeting." + action.replace("-", "_"), group_id=occurrence.series.group_id,
                 target_type="occurrence", target_id=occurrence.id)


def announce(session: Session, user: User, occurrence_id: int, text: str) -> None:
    occurrence = _occurrence_for(session, user, occurrence_id)
    moderation.announce(session, occurrence.id, text)
    # The announcement's words are not in the audit line: it holds no message text.
    audit.record(session, user, "meeting.announce", group_id=occurrence.series.group_id,
                 target_type="occurrence", target_id=occurrence.id)
