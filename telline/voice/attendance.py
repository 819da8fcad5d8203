"""Attendance as coordinators follow it: a group's recent meetings and how many came, who came to
one meeting and for how long, and each member over those meetings. Read-only; the one rule for
"who counts as one person" is telline.voice.roster.attendance, which this builds on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline.accounts import access
from telline.models import ConferenceParticipant, MeetingOccurrence, Member, User
from telline.scheduling.agenda import AgendaEntry, agenda
from telline.voice.roster import Attendance, attendance
from telline.zones import zone

RECENT = 12  # meetings a group's page looks back over


@dataclasses.dataclass(frozen=True)
class MemberOverTime:
    member_id: int
    shown_as: str
    attended: int  # of the meetings shown
    last: dt.datetime  # the last one they came to, in the group's zone


@dataclasses.dataclass(frozen=True)
class GroupAttendance:
    meetings: list[AgendaEntry]  # oldest first, so a chart reads left to right
    members: list[MemberOverTime]  # most regular first


@dataclasses.dataclass(frozen=True)
class MeetingAttendance:
    occurrence_id: int
    group_id: int
    title: str
    starts: dt.datetime  # in the series' zone
    people: list[Attendance]  # longest stay first


def group_attendance(session: Session, user: User, group_id: int, now: dt.datetime,
                     meetings: int = RECENT) -> GroupAttendance:
    group = access.require_group(session, user, group_id)
    past = list(reversed(agenda(session, now, group_id=group_id, upcoming=0, past=meetings).past))
    held = [entry.occurrence_id for entry in past if entry.occurrence_id is not None]
    query = (sa.select(ConferenceParticipant.member_id, Member.display_name,
                       sa.func.count(sa.distinct(ConferenceParticipant.occurrence_id)),
                       sa.func.max(MeetingOccurrence.starts_at))
             .join(Member, Member.id == ConferenceParticipant.member_id)
             .join(MeetingOccurrence, MeetingOccurrence.id == ConferenceParticipant.occurrence_id)
             .where(ConferenceParticipant.occurrence_id.in_(held), ConferenceParticipant.joined_at.is_not(None))
             .group_by(ConferenceParticipant.member_id, Member.display_name))
    members = [MemberOverTime(member_id, name or f"Member {member_id}", count,
                              _utc(last).astimezone(zone(group.timezone)))
               for member_id, name, count, last in (session.execute(query) if held else [])
               if member_id is not None]
    members.sort(key=lambda m: (-m.attended, m.shown_as.casefold()))
    return GroupAttendance(past, members)


def meeting_attendance(session: Session, user: User, occurrence_id: int) -> MeetingAttendance:
    occurrence = session.get(MeetingOccurrence, occurrence_id)
    if occurrence is None or not access.can_see_group(session, user, occurrence.series.group_id):
        raise access.NotFound(f"There is no meeting {occurrence_id}.")
    people = sorted(attendance(session, occurrence_id), key=lambda a: (-a.minutes, a.shown_as.casefold()))
    series = occurrence.series
    return MeetingAttendance(occurrence.id, series.group_id, series.title,
                             occurrence.starts_at.astimezone(zone(series.timezone)), people)


def _utc(moment: dt.datetime) -> dt.datetime:
    # An aggregate (max) comes back from SQLite as the stored text's datetime without a zone.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
