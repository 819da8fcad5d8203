"""Who may take a seat in a meeting is one rule (telline.voice.meetings.refusal), read by both ways
in: the quick path's one statement (PostgreSQL) and the full path. Here both are asked about every
state a meeting can be in, for a member and for a host, and must agree with each other and with
the rule as members and hosts hear it."""

from __future__ import annotations

import itertools

import pytest

from telline.job_queues import queues
from telline.models import ConferenceParticipant, OccurrenceStatus, utcnow
from telline.voice import incoming, meetings
from telline.voice.directory import directory
from telline.voice.lockout import Lockout
from tests.conftest import SECRET_KEY
from tests.voice.conftest import LINE, PUBLIC_URL, meeting, new_call_sid

CALLER = "+447911123456"
CASES = list(itertools.product(OccurrenceStatus, (False, True), (False, True), ("member", "host")))


def expected(status: OccurrenceStatus, locked: bool, full: bool, role: str) -> str:
    """The rule, as a caller hears it."""
    if status == OccurrenceStatus.CANCELLED:
        return "next_meeting"
    if role == "host":
        return "join"  # a host gets in whatever the state, and restarts a meeting that was ended
    if status == OccurrenceStatus.ENDED:
        return "meeting_ended"
    if locked:
        return "meeting_locked"
    return "meeting_full" if full else "join"


@pytest.mark.parametrize("status,locked,full,role", CASES,
                         ids=["-".join(map(str, case)) for case in CASES])
def test_both_ways_in_apply_the_same_admission_rule(session, group, line, status, locked, full, role):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("the quick path is PostgreSQL's; SQLite has the full path only")
    series = meeting(session, group, line, max_participants=2)
    [(_, start)] = directory().by_id(session, line.id).on_now(utcnow())
    occurrence = meetings.occurrence(session, series, start)  # the quick path never makes the row
    occurrence.status, occurrence.locked = status, locked
    for n in range(2 if full else 1):
        session.add(ConferenceParticipant(conference_sid="CF" + "0" * 32, call_sid=f"CA{n:032d}",
                                          occurrence_id=occurrence.id, joined_at=utcnow()))
    session.commit()
    code = series.host_pin if role == "host" else series.access_code
    now = utcnow()

    savepoint = session.begin_nested()
    quick = incoming._quick_admit(session, new_call_sid(), code, CALLER, LINE, "in-progress", PUBLIC_URL, now)
    savepoint.rollback()
    lockout = Lockout(queues().connection, SECRET_KEY)
    answer = incoming._enter_code(session, new_call_sid(), code, CALLER, LINE, "in-progress", PUBLIC_URL,
                                  lockout, now)
    session.rollback()

    assert answer.kind == expected(status, locked, full, role)
    if quick is not None:  # the quick path seats only whom the full path seats…
        assert quick.kind == answer.kind == "join"
        assert quick.seat.name == answer.seat.name and quick.seat.host == answer.seat.host == (role == "host")
    else:  # …and leaves to it only the seats it does not take itself: a host restarting an ended meeting
        assert answer.kind != "join" or status == OccurrenceStatus.ENDED
