"""Attendance pages: a group's recent meetings (chart and table), one meeting's attendees, members
over time, and the CSV exports (formula-safe, audited)."""

import csv
import datetime as dt
import html as html_text
import io
import re

import pytest
import sqlalchemy as sa

from telline import groups
from telline.accounts import users
from telline.models import AuditEvent, ConferenceParticipant, Member, Membership, utcnow
from telline.scheduling.series import create_series, starts_before
from telline.voice.meetings import occurrence
from telline.zones import zone
from tests.admin.test_sessions import PASSWORD, sign_in


@pytest.fixture
def history(session):
    """A weekly Paris meeting that began about three weeks ago: its first three meetings had 3, 0
    (nobody came) and 2 people; a fourth, if the clock has passed it today, had nobody."""
    group = groups.create_group(session, name="Carers", timezone="Europe/Paris", region="FR")
    line = groups.add_line(session, group.id, "+33 1 84 88 00 00")
    first = (utcnow() - dt.timedelta(days=21)).astimezone(zone("Europe/Paris")).replace(
        tzinfo=None, hour=19, minute=0, second=0, microsecond=0)
    series = create_series(session, group=group, line=line, title="Tuesday circle", first_start_local=first,
                           rrule="FREQ=WEEKLY", now=utcnow() - dt.timedelta(days=30))
    ana, eve = (Member(display_name=name, phone=number) for name, number in
                (("Ana", "+33612345678"), ("=HYPERLINK(\"x\")", "+33612345679")))
    session.add_all([ana, eve])
    session.flush()
    session.add_all([Membership(member_id=m.id, group_id=group.id, status="active") for m in (ana, eve)])
    starts = sorted(starts_before(series, zone("Europe/Paris"), utcnow() - dt.timedelta(hours=1), 10))
    meetings = [occurrence(session, series, start) for start in starts[:3]]
    session.flush()
    stays = {0: [(ana, 60), (eve, 30), (None, 45)], 1: [], 2: [(ana, 50), (None, 10)]}
    for index, people in stays.items():
        for n, (who, minutes) in enumerate(people):
            start = meetings[index].starts_at
            session.add(ConferenceParticipant(conference_sid=f"CF{index:032d}", call_sid=f"CA{index}{n:031d}",
                                              occurrence_id=meetings[index].id, member_id=who.id if who else None,
                                              joined_at=start, left_at=start + dt.timedelta(minutes=minutes)))
    users.create_user(session, email="ana@example.org", display_name="Ana", password=PASSWORD,
                      role="coordinator", group_ids=[group.id])
    session.commit()
    return group, meetings


def table_rows(page: str) -> list[str]:
    """Each table row as the coordinator reads it: its cells' text, entities decoded."""
    return [html_text.unescape(" ".join(re.sub(r"<[^>]+>", " ", row).split()))
            for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)]


def test_the_group_page_charts_the_last_meetings_and_lists_members_over_them(client, history):
    group, meetings = history
    sign_in(client)
    html = client.get(f"/groups/{group.id}/attendance").get_data(as_text=True)
    chart = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    counts = [int(n) for n in re.findall(r'text-anchor="middle">(\d+)</text>', chart)]
    held = len(counts)
    assert held in (3, 4) and counts == [3, 0, 2, 0][:held]  # oldest first
    assert 'role="img"' in chart and f"People at each of the last {held} meetings" in chart
    rows = table_rows(html)
    assert rows[held - 2].endswith("Tuesday circle 2") and rows[held].endswith("Tuesday circle 3")  # newest first
    assert re.search(r"19:00 \(CES?T\)", rows[1])
    assert any(row.startswith(f"Ana 2 of {held} ") for row in rows)
    assert any(row.startswith(f'=HYPERLINK("x") 1 of {held} ') for row in rows)  # escaped by Jinja


def test_one_meeting_lists_who_came_longest_first_and_never_a_number(client, history):
    _, meetings = history
    sign_in(client)
    html = client.get(f"/meetings/{meetings[0].id}/attendance").get_data(as_text=True)
    cells = table_rows(html)
    assert cells[1:] == ["Ana member 60.0", "Caller ••• member 45.0", '=HYPERLINK("x") member 30.0']
    assert "+336" not in html  # a caller with no known number is "Caller •••"; never a number


def test_csv_exports_are_formula_safe_and_audited(client, session, history):
    group, meetings = history
    sign_in(client)
    answer = client.get(f"/meetings/{meetings[0].id}/attendance.csv")
    assert answer.headers["Content-Disposition"] == f'attachment; filename="attendance-meeting-{meetings[0].id}.csv"'
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0] == ["name", "role", "minutes"]
    assert ["'=HYPERLINK(\"x\")", "member", "30.0"] in rows  # a spreadsheet shows it as text
    per_meeting = list(csv.reader(io.StringIO(client.get(f"/groups/{group.id}/attendance.csv").get_data(as_text=True))))
    assert [row[-1] for row in per_meeting][:4] == ["attended", "3", "0", "2"]
    actions = session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["attendance.export", "attendance.export"]


def test_another_groups_coordinator_gets_404_everywhere(client, session, history):
    group, meetings = history
    other = groups.create_group(session, name="Elsewhere")
    users.create_user(session, email="bob@example.org", display_name="Bob", password=PASSWORD,
                      role="coordinator", group_ids=[other.id])
    session.commit()
    sign_in(client, email="bob@example.org")
    for path in (f"/groups/{group.id}/attendance", f"/groups/{group.id}/attendance.csv",
                 f"/meetings/{meetings[0].id}/attendance", f"/meetings/{meetings[0].id}/attendance.csv"):
        assert client.get(path).status_code == 404, path
    assert session.scalars(sa.select(AuditEvent)).all() == []
