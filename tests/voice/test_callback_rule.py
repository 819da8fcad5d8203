"""The participant callbacks' rule, checked against the plain computation, on both databases.

telline.voice.roster writes a participant's row in one upsert (on PostgreSQL, key and meeting in
the same statement) where it once read the row into the ORM, changed it in Python and flushed it.
Here random callback sequences — joins, leaves, mutes, holds, duplicates, callers waiting for a
host, a call telline never answered, a caller whose name is played — arrive in any order, and the
rows must be exactly what the old computation (reference() below) gives. On PostgreSQL both ways
in are asked: the one statement, and the full path it falls back to.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import itertools

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telline.models import Call, ConferenceParticipant, MeetingOccurrence, Task, utcnow
from telline.voice import roster
from tests.voice.conftest import call, meeting, member, press

ANA, BOB, HOST = "+447911123456", "+447911123457", "+447911123900"
STRANGER = "CA" + "7" * 32  # a call telline never answered (no calls row)
BASE = utcnow().replace(second=0, microsecond=0) - dt.timedelta(hours=2)
_conferences = itertools.count(1)
KINDS = ["join", "leave", "mute", "unmute", "hold", "unhold", "modify", "speech-start"]


@dataclasses.dataclass(frozen=True)
class Told:
    """One participant callback as Twilio numbers it."""
    kind: str
    who: int  # index into the meeting's calls
    sequence: int
    minute: int
    muted: str | None
    hold: str | None

    @property
    def at(self) -> dt.datetime:
        return BASE + dt.timedelta(minutes=self.minute)


def reference(arrived: list[Told], calls: list[tuple[str, int | None, str]]) -> tuple[dict, list[str], set[int]]:
    """The rule as roster.py computed it through the ORM before it was one statement: (rows by call
    SID, the outcome of each callback, the calls whose name is announced)."""
    rows: dict[str, dict] = {}
    seen, outcomes, announced = set(), [], set()
    for told in arrived:
        if told.sequence in seen:
            outcomes.append("duplicate")
            continue
        seen.add(told.sequence)
        outcomes.append("applied")
        sid, member_id, role = calls[told.who]
        p = rows.setdefault(sid, dict(joined_at=None, left_at=None, last_sequence=-1, muted=False, on_hold=False,
                                      member_id=member_id, role=role))
        if told.kind == "join":
            if p["joined_at"] is None:
                announced.add(told.who)
            p["joined_at"] = min(filter(None, (p["joined_at"], told.at)))
        elif told.kind == "leave":
            p["left_at"] = max(filter(None, (p["left_at"], told.at)))
        if told.sequence > p["last_sequence"]:
            p["last_sequence"] = told.sequence
            if told.muted is not None:
                p["muted"] = told.muted == "true"
            if told.hold is not None:
                p["on_hold"] = told.hold == "true"
            if told.kind in ("mute", "unmute"):
                p["muted"] = told.kind == "mute"
            elif told.kind in ("hold", "unhold"):
                p["on_hold"] = told.kind == "hold"
    return rows, outcomes, announced


@st.composite
def sequences(draw):
    """Callbacks numbered 1…n as Twilio sends them, some repeated, arriving in any order."""
    n = draw(st.integers(1, 14))
    flags = st.sampled_from([None, "true", "false"])
    told = [Told(draw(st.sampled_from(KINDS)), draw(st.integers(0, 3)), seq, draw(st.integers(0, 5)),
                 draw(flags), draw(flags)) for seq in range(1, n + 1)]
    repeats = draw(st.lists(st.sampled_from(told), max_size=4))
    return draw(st.permutations(told + repeats))


@pytest.fixture
def calls(client, session, group, line):
    """The meeting's calls: a member, a caller, a host (the name-recording one), and a stranger."""
    series = meeting(session, group, line)
    ana = member(session, group, ANA, "Ana")
    sids = []
    for number, code in ((ANA, series.access_code), (BOB, series.access_code), (HOST, series.host_pin)):
        sid, _ = call(client, sender=number)
        press(client, sid, code)
        sids.append(sid)
    session.execute(sa.update(Call).where(Call.twilio_sid == sids[2])
                    .values(name_recording_url="https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"))
    session.commit()
    return [(sids[0], ana.id, "member"), (sids[1], None, "member"), (sids[2], None, "host"), (STRANGER, None, "member")]


@pytest.mark.parametrize("way", ["as deployed", "full path"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrived=sequences(), host_there=st.booleans())
def test_participant_rows_are_what_the_plain_rule_gives(session, calls, monkeypatch, way, arrived, host_there):
    postgres = session.get_bind().dialect.name == "postgresql"
    if way == "full path" and not postgres:
        pytest.skip("SQLite has the full path only")
    if way == "full path":
        monkeypatch.setattr(roster, "_participant_in_one_statement", lambda *_: None)
    occurrence = session.scalar(sa.select(MeetingOccurrence))
    conference_sid = f"CF{next(_conferences):032d}"
    # The conference is the meeting's running one (its host is there), or callers wait for a host.
    session.execute(sa.update(MeetingOccurrence).values(conference_sid=conference_sid if host_there else None))
    session.execute(sa.delete(Task))
    session.commit()

    outcomes = [roster.apply(session, roster.ConferenceEvent(
        conference_sid=conference_sid, friendly_name=occurrence.conference_name, kind=f"participant-{t.kind}",
        sequence=t.sequence, call_sid=calls[t.who][0], muted=t.muted, hold=t.hold,
        timestamp=email.utils.format_datetime(t.at))) for t in arrived]

    expected, expected_outcomes, announced = reference(arrived, calls)
    assert outcomes == expected_outcomes
    got = {p.call_sid: dict(joined_at=p.joined_at, left_at=p.left_at, last_sequence=p.last_sequence, muted=p.muted,
                            on_hold=p.on_hold, member_id=p.member_id, role=p.role)
           for p in session.scalars(sa.select(ConferenceParticipant)
                                    .where(ConferenceParticipant.conference_sid == conference_sid))}
    assert got == expected
    assert set(session.scalars(sa.select(ConferenceParticipant.occurrence_id)
                               .where(ConferenceParticipant.conference_sid == conference_sid))) == {occurrence.id}
    session.refresh(occurrence)
    assert occurrence.conference_sid == conference_sid  # the one running now, whether or not a host was there
    # The host's recorded name is played once, on their first join, whatever order the joins came in.
    names = session.scalars(sa.select(Task.args).where(Task.func.endswith("announce_name_job"))).all()
    host_call_id = session.scalar(sa.select(Call.id).where(Call.twilio_sid == calls[2][0]))
    assert names == ([[host_call_id]] if 2 in announced else [])
