"""The live meeting page, as a coordinator uses it: the roster from Twilio's callbacks, the host's
controls going through the moderation jobs, the page showing the result only once Twilio says so."""

import re

import pytest
import sqlalchemy as sa

from telline import groups
from telline.accounts import users
from telline.models import AuditEvent, ConferenceParticipant
from tests.admin.test_sessions import PASSWORD, sign_in
from tests.sms.conftest import (
    run_jobs,
    settings_overrides,  # noqa: F401 — a fixture: the app talks to the stand-in
)
from tests.voice.conftest import group, line  # noqa: F401 — fixtures
from tests.voice.test_roster_and_moderation import ANA, BOB, HOST, event, live, participant_updates  # noqa: F401


@pytest.fixture
def coordinator(session, group):  # noqa: F811
    user = users.create_user(session, email="ana@example.org", display_name="Ana", password=PASSWORD,
                             role="coordinator", group_ids=[group.id])
    session.commit()
    return user


def page_of(client, occ):
    answer = client.get(f"/meetings/{occ.id}/live")
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def roster_of(client, occ):
    answer = client.get(f"/meetings/{occ.id}/live/roster")
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def entry(html, name):
    """The roster line of one participant, as text (badges and buttons)."""
    for item in re.findall(r"<li data-participant=\"\d+\">(.*?)</li>", html, re.S):
        if f'<span class="who">{name}</span>' in item:
            return " ".join(re.sub(r"<[^>]+>", " ", item).split())
    raise AssertionError(f"{name} is not on the roster")


def post(client, path, **form):
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path.rsplit("/live", 1)[0] + "/live")
                      .get_data(as_text=True)).group(1)
    return client.post(path, data={"csrf_token": token, **form})


def test_the_roster_names_callers_without_their_numbers_and_updates_in_place(client, coordinator, live):  # noqa: F811
    occ, _ = live
    sign_in(client)
    html = page_of(client, occ)
    assert "Live" in html and 'hx-trigger="every 1s"' in html
    assert entry(html, "Caller •••3900").startswith("Caller •••3900 host")
    assert entry(html, "Ana") == "Ana Mute Hold Remove"
    for number in (HOST, ANA, BOB):
        assert number not in html and number[-10:] not in html


def test_mute_goes_through_twilio_and_shows_once_the_callback_says_so(app, client, session, coordinator, live,  # noqa: F811
                                                                    standin):
    occ, sids = live
    sign_in(client)
    ana = session.scalar(sa.select(ConferenceParticipant.id).where(ConferenceParticipant.call_sid == sids[ANA]))
    answer = post(client, f"/meetings/{occ.id}/live/participants/{ana}/mute")
    assert answer.status_code == 303
    assert "Mute asked. The roster shows it once Twilio confirms." in page_of(client, occ)
    assert "muted" not in entry(roster_of(client, occ), "Ana")  # asked, not guessed
    run_jobs(app)
    assert participant_updates(standin, sids[ANA])[-1] == [("Muted", "true")]
    event(client, occ, "participant-mute", sids[ANA], Muted="true")
    assert entry(roster_of(client, occ), "Ana") == "Ana muted Unmute Hold Remove"
    [audit] = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "meeting.mute")).all()
    assert (audit.actor, audit.target_type, audit.target_id, audit.detail) == (
        "ana@example.org", "participant", ana, {"occurrence_id": occ.id})


def test_raised_hands_come_first(client, session, coordinator, live):  # noqa: F811
    occ, sids = live
    session.execute(sa.update(ConferenceParticipant).where(ConferenceParticipant.call_sid == sids[BOB])
                    .values(hand_raised=True))
    session.commit()
    sign_in(client)
    names = re.findall(r'<span class="who">([^<]+)</span>', roster_of(client, occ))
    assert names == ["Caller •••3457", "Caller •••3900", "Ana"]  # the raised hand, the host, then by joining
    assert "hand raised" in entry(roster_of(client, occ), "Caller •••3457")


def test_lock_unlock_and_a_refused_action_is_said_on_the_page(client, session, coordinator, live):  # noqa: F811
    occ, sids = live
    sign_in(client)
    post(client, f"/meetings/{occ.id}/live/lock")
    assert "locked</strong>: new callers are turned away" in page_of(client, occ)
    post(client, f"/meetings/{occ.id}/live/unlock")
    assert "locked</strong>" not in page_of(client, occ)
    bob = session.scalar(sa.select(ConferenceParticipant.id).where(ConferenceParticipant.call_sid == sids[BOB]))
    event(client, occ, "participant-leave", sids[BOB])
    post(client, f"/meetings/{occ.id}/live/participants/{bob}/kick")
    assert "That caller is no longer in the meeting." in page_of(client, occ)
    assert post(client, f"/meetings/{occ.id}/live/announce", text="  ").status_code == 303
    assert "An announcement has 1 to 500 characters." in page_of(client, occ)


def test_another_groups_coordinator_and_nobody_see_nothing(client, session, live):  # noqa: F811
    occ, sids = live
    other = groups.create_group(session, name="Elsewhere")
    users.create_user(session, email="ana@example.org", display_name="Ana", password=PASSWORD,
                      role="coordinator", group_ids=[other.id])
    session.commit()
    ana = session.scalar(sa.select(ConferenceParticipant.id).where(ConferenceParticipant.call_sid == sids[ANA]))
    for path in (f"/meetings/{occ.id}/live", f"/meetings/{occ.id}/live/roster"):
        assert client.get(path).status_code == 302  # nobody: to the sign-in page
    sign_in(client)
    for path in (f"/meetings/{occ.id}/live", f"/meetings/{occ.id}/live/roster"):
        assert client.get(path).status_code == 404
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)
    for path in (f"/meetings/{occ.id}/live/participants/{ana}/mute", f"/meetings/{occ.id}/live/end"):
        assert client.post(path, data={"csrf_token": token}).status_code == 404
    assert session.scalars(sa.select(AuditEvent)).all() == []


def test_an_action_without_the_csrf_token_is_refused(client, session, coordinator, live):  # noqa: F811
    occ, _ = live
    sign_in(client)
    assert client.post(f"/meetings/{occ.id}/live/end").status_code == 400
    session.refresh(occ)
    assert occ.status == "live"
