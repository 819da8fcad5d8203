"""An operator finds meetings and their ids (`telline meeting list`), and every report says
what it found — an unknown meeting, an empty roster, no failures — instead of printing nothing."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from telline.cli import cli
from telline.models import ConferenceParticipant, Group, Line, MeetingOccurrence, utcnow
from telline.scheduling.occurrences import cancel
from telline.scheduling.series import create_series
from telline.voice.meetings import occurrence
from tests.sms.conftest import add_member
from tests.voice.conftest import member


def run(runner, *args):
    return runner.invoke(cli, [str(a) for a in args])


def weekly(session, group, line, *, weeks_ago=3, title="Tuesday group"):
    """A weekly series whose first meeting was `weeks_ago` weeks ago, two hours before now."""
    zone = ZoneInfo(group.timezone)
    first = (utcnow() - dt.timedelta(weeks=weeks_ago, hours=2)).astimezone(zone).replace(
        tzinfo=None, second=0, microsecond=0)
    series = create_series(session, group=group, line=line, title=title, first_start_local=first)
    session.commit()
    return series


def attended(session, occ, *people):
    for i, member_id in enumerate(people):
        session.add(ConferenceParticipant(conference_sid="CF" + "7" * 32, call_sid=f"CA{occ.id:016d}{i:016d}",
                                          occurrence_id=occ.id, member_id=member_id, role="member",
                                          joined_at=occ.starts_at, left_at=occ.starts_at + dt.timedelta(minutes=30)))
    session.commit()


def lines_of(output: str, section: str) -> list[str]:
    """The meetings listed under `section` (upcoming, past), without its header."""
    if f"{section}: none\n" in output:
        return []
    part = output.split(f"{section}\n")[1].split("\n\n")[0]
    return [line for line in part.splitlines()[1:] if line.strip()]


def test_unknown_meetings_are_said_so(runner, session, group):
    for report in ("roster", "attendance"):
        r = run(runner, "meeting", report, 999)
        assert r.exit_code == 2 and "there is no meeting 999" in r.output, r.output
        assert "telline meeting list" in r.output


def test_a_meeting_nobody_joined_says_so(runner, session, group, line):
    series = weekly(session, group, line)
    occ = occurrence(session, series, series.first_start)
    session.commit()
    r = run(runner, "meeting", "roster", occ.id)
    assert r.exit_code == 0 and r.output == f"nobody has joined meeting {occ.id}\n"
    r = run(runner, "meeting", "attendance", occ.id)
    assert r.exit_code == 0 and r.output == f"nobody attended meeting {occ.id}\n"


def test_no_failures_is_said_so(runner, session, group):
    add_member(session, group)
    r = run(runner, "sms", "failures")
    assert r.exit_code == 0 and r.output == "no member's texts are failing\n"
    r = run(runner, "sms", "failures", "--group", group.id)
    assert r.exit_code == 0 and r.output == f"no member of group {group.id} has texts failing\n"
    r = run(runner, "sms", "failures", "--group", 999)
    assert r.exit_code == 2 and "there is no group 999" in r.output


def test_meeting_list_shows_past_and_upcoming_with_their_ids_and_writes_nothing(runner, session, group, line):
    series = weekly(session, group, line)
    zone = ZoneInfo(group.timezone)
    starts = [series.first_start + dt.timedelta(weeks=w) for w in range(6)]  # 0..3 past, 4 and 5 to come
    ana, bob = member(session, group, "+447911123456", "Ana"), member(session, group, "+447911123457", "Bob")
    met = occurrence(session, series, starts[2])
    met.status = "ended"
    session.commit()
    attended(session, met, ana.id, bob.id, ana.id)  # Ana rejoined: two people
    off = cancel(session, series.id, starts[5])
    session.commit()
    rows_before = session.scalar(sa.select(sa.func.count()).select_from(MeetingOccurrence))

    r = run(runner, "meeting", "list", "--past", 3, "--upcoming", 2)
    assert r.exit_code == 0, r.output
    session.expire_all()
    assert session.scalar(sa.select(sa.func.count()).select_from(MeetingOccurrence)) == rows_before

    def when(start):
        return f"{start.astimezone(zone):%a %Y-%m-%d %H:%M %Z}"
    upcoming, past = lines_of(r.output, "upcoming"), lines_of(r.output, "past")
    assert [line.split() for line in upcoming] == [
        ["-", str(series.id), *when(starts[4]).split(), "scheduled", "-"],
        [str(off.id), str(series.id), *when(starts[5]).split(), "cancelled", "-"]]
    assert [line.split() for line in past] == [
        ["-", str(series.id), *when(starts[3]).split(), "no", "callers", "0"],
        [str(met.id), str(series.id), *when(starts[2]).split(), "ended", "2"],
        ["-", str(series.id), *when(starts[1]).split(), "no", "callers", "0"]]
    # the ids it shows are the ones the other commands take
    assert run(runner, "meeting", "attendance", met.id).output.count(" min") == 2
    assert run(runner, "meeting", "cancel", series.id, f"{starts[4].astimezone(zone):%Y-%m-%d}").exit_code == 0


def test_meeting_list_filters(runner, session, group, line):
    other_group = Group(name="Other", timezone="Europe/Paris")
    session.add(other_group)
    session.flush()
    other_line = Line(group_id=other_group.id, phone_number="+15005550009")
    session.add(other_line)
    session.commit()
    mine, theirs = weekly(session, group, line), weekly(session, other_group, other_line, title="Other")
    everything = run(runner, "meeting", "list").output
    assert {int(line.split()[1]) for line in lines_of(everything, "upcoming")} == {mine.id, theirs.id}
    for args in (["--group", group.id], ["--series", mine.id]):
        r = run(runner, "meeting", "list", *args)
        assert r.exit_code == 0, r.output
        assert {int(line.split()[1]) for line in lines_of(r.output, "upcoming")} == {mine.id}
    assert len(lines_of(run(runner, "meeting", "list", "--upcoming", 1).output, "upcoming")) == 1
    assert "past: none" in run(runner, "meeting", "list", "--past", 0).output
    r = run(runner, "meeting", "list", "--series", 999)
    assert r.exit_code == 2 and "there is no meeting series 999" in r.output
    r = run(runner, "meeting", "list", "--group", 999)
    assert r.exit_code == 2 and "there is no group 999" in r.output


def test_meeting_list_with_nothing_scheduled(runner, session, group):
    r = run(runner, "meeting", "list")
    assert r.exit_code == 0 and re.fullmatch(r"no meetings( .*)?\n", r.output), r.output
