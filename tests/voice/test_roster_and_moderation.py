"""The live roster from conference callbacks; moderation through the Twilio stand-in; text controls."""

import itertools

import pytest
import sqlalchemy as sa

from telline.models import Call, ConferenceParticipant, InboxItem, MeetingOccurrence
from telline.twilio.gateway import gateway
from telline.voice import moderation
from telline.voice.roster import attendance, roster
from tests.signing import post_signed
from tests.sms.conftest import run_jobs, texts_to
from tests.voice.conftest import LINE, call, meeting, member, press

HOST, ANA, BOB = "+447911123900", "+447911123456", "+447911123457"
_seq = itertools.count(1)
_msg = itertools.count(1)


def event(client, occ, kind, call_sid=None, seq=None, **extra):
    form = {"ConferenceSid": occ.conference_sid, "FriendlyName": occ.conference_name, "StatusCallbackEvent": kind,
            "SequenceNumber": str(seq if seq is not None else next(_seq)), "AccountSid": "AC" + "1" * 32,
            "Timestamp": extra.pop("Timestamp", "Thu, 26 Nov 2026 19:00:00 +0000"), **extra}
    if call_sid:
        form["CallSid"] = call_sid
    r = post_signed(client, "/twilio/voice/conference", form)
    assert r.status_code == 204
    return r


def text(client, body, sender):
    r = post_signed(client, "/twilio/sms", {"MessageSid": f"SM{next(_msg):032d}", "From": sender, "To": LINE,
                                            "Body": body})
    assert r.status_code == 200


@pytest.fixture
def live(client, session, group, line, standin):
    """A live meeting: a host and two members in a conference the stand-in knows."""
    series = meeting(session, group, line)
    member(session, group, ANA, "Ana")
    sids = {}
    for number, code in ((HOST, series.host_pin), (ANA, series.access_code), (BOB, series.access_code)):
        sid, _ = call(client, sender=number)
        press(client, sid, code)
        sids[number] = sid
    occ = session.scalar(sa.select(MeetingOccurrence))
    # The stand-in holds the same conference, so moderation requests have something to act on.
    twin = {n: gateway().add_participant(occ.conference_name, from_=LINE, to=n) for n in sids}
    conference_sid = twin[HOST].conference_sid
    for number, participant in twin.items():  # use the stand-in's call SIDs for our calls
        session.execute(sa.update(Call).where(Call.twilio_sid == sids[number]).values(twilio_sid=participant.call_sid))
        sids[number] = participant.call_sid
    occ.conference_sid = conference_sid
    session.commit()
    event(client, occ, "conference-start")
    for number in (HOST, ANA, BOB):
        event(client, occ, "participant-join", sids[number], Muted="false", Hold="false")
    return occ, sids


def by_name(session, occ):
    return {line.shown_as: line for line in roster(session, occ.id)}


def test_the_roster_shows_who_is_on_without_full_numbers(session, live):
    occ, _ = live
    shown = by_name(session, occ)
    assert set(shown) == {"Ana", "Caller •••3900", "Caller •••3457"}
    assert shown["Caller •••3900"].role == "host" and shown["Ana"].role == "member"
    assert all(line.present for line in shown.values())
    session.refresh(occ)
    assert occ.status == "live"


def test_duplicate_and_out_of_order_callbacks_leave_the_right_state(client, session, live):
    occ, sids = live
    event(client, occ, "participant-mute", sids[ANA], seq=500, Muted="true")
    event(client, occ, "participant-mute", sids[ANA], seq=500, Muted="true")  # a repeat
    event(client, occ, "participant-unmute", sids[ANA], seq=499, Muted="false")  # older news, late
    assert by_name(session, occ)["Ana"].muted is True
    event(client, occ, "participant-unmute", sids[ANA], seq=501, Muted="false")
    assert by_name(session, occ)["Ana"].muted is False


def test_a_leave_that_arrives_before_its_join_still_counts(client, session, live):
    occ, _ = live
    late = "CA" + "4" * 32
    event(client, occ, "participant-leave", late, seq=901, Timestamp="Thu, 26 Nov 2026 19:30:00 +0000")
    event(client, occ, "participant-join", late, seq=900, Timestamp="Thu, 26 Nov 2026 19:10:00 +0000")
    [p] = session.scalars(sa.select(ConferenceParticipant).where(ConferenceParticipant.call_sid == late)).all()
    assert (p.joined_at.minute, p.left_at.minute) == (10, 30)


def test_attendance_after_the_conference_ends(client, session, live):
    occ, sids = live
    event(client, occ, "participant-leave", sids[BOB], Timestamp="Thu, 26 Nov 2026 19:20:00 +0000")
    event(client, occ, "conference-end", Timestamp="Thu, 26 Nov 2026 20:00:00 +0000")
    session.refresh(occ)
    assert (occ.status, occ.conference_sid) == ("scheduled", None)  # the meeting's slot is not over
    minutes = {a.shown_as: a.minutes for a in attendance(session, occ.id)}
    assert minutes == {"Caller •••3900": 60.0, "Ana": 60.0, "Caller •••3457": 20.0}
    assert not any(line.present for line in roster(session, occ.id))


def test_callbacks_for_unknown_conferences_and_garbage(client, session):
    r = post_signed(client, "/twilio/voice/conference", {"ConferenceSid": "CF" + "9" * 32, "FriendlyName": "x",
                                                         "StatusCallbackEvent": "conference-start",
                                                         "SequenceNumber": "1"})
    assert r.status_code == 204
    for form in ({}, {"ConferenceSid": "CF1", "SequenceNumber": "x"}, {"SequenceNumber": "1"}):
        assert post_signed(client, "/twilio/voice/conference", form).status_code == 400


def participant_updates(standin, call_sid):
    return [r.form for r in standin.requests(method="POST") if r.path.endswith(f"/Participants/{call_sid}.json")]


def test_moderation_goes_through_twilio_and_the_roster_follows_the_callbacks(app, client, session, live, standin):
    occ, sids = live
    ana = by_name(session, occ)["Ana"]
    moderation.act_on_participant(session, ana.participant_id, "mute")
    session.commit()
    assert by_name(session, occ)["Ana"].muted is False  # not guessed…
    run_jobs(app)
    assert [("Muted", "true")] == participant_updates(standin, sids[ANA])[-1]
    event(client, occ, "participant-mute", sids[ANA], Muted="true")
    assert by_name(session, occ)["Ana"].muted is True  # …but told by Twilio


def test_mute_all_spares_the_hosts(app, session, live, standin):
    occ, sids = live
    moderation.mute_all(session, occ.id)
    session.commit()
    run_jobs(app)
    assert participant_updates(standin, sids[HOST]) == []
    assert participant_updates(standin, sids[ANA]) and participant_updates(standin, sids[BOB])


def test_kick_hold_announce_end(app, session, live, standin):
    occ, sids = live
    bob = by_name(session, occ)["Caller •••3457"]
    moderation.act_on_participant(session, bob.participant_id, "hold")
    moderation.act_on_participant(session, bob.participant_id, "kick")
    moderation.announce(session, occ.id, "  Five minutes left.  ")
    session.commit()
    run_jobs(app)
    assert ("Hold", "true") in participant_updates(standin, sids[BOB])[0]
    assert any(r.method == "DELETE" and r.path.endswith(f"/Participants/{sids[BOB]}.json") for r in standin.requests())
    conference_path = f"/Conferences/{occ.conference_sid}.json"
    [announce] = [r for r in standin.requests(method="POST") if r.path.endswith(conference_path)]
    assert announce.get("AnnounceUrl").startswith("http://telline.test/twilio/voice/announcement/")
    moderation.end_meeting(session, occ.id)
    session.commit()
    run_jobs(app)
    ended = [r for r in standin.requests(method="POST") if r.path.endswith(f"/Conferences/{occ.conference_sid}.json")]
    assert ended[-1].get("Status") == "completed"


def test_the_announcement_url_speaks_the_sentence(client, session, live):
    occ, _ = live
    row = moderation.announce(session, occ.id, "Five minutes left.")
    session.commit()
    r = post_signed(client, f"/twilio/voice/announcement/{row.id}", {"CallSid": "CA" + "0" * 32})
    assert r.status_code == 200 and b"<Say language=\"en-GB\">Five minutes left.</Say>" in r.data
    assert post_signed(client, "/twilio/voice/announcement/999999", {}).status_code == 404


def test_bad_moderation_requests_are_refused(session, live):
    occ, _ = live
    with pytest.raises(moderation.ModerationError):
        moderation.announce(session, occ.id, "")
    with pytest.raises(moderation.ModerationError):
        moderation.act_on_participant(session, 999999, "mute")
    with pytest.raises(moderation.ModerationError):
        moderation.act_on_participant(session, 1, "explode")


class TestTextControls:
    def test_a_member_mutes_and_unmutes_by_text(self, app, client, session, live, standin):
        occ, sids = live
        text(client, "mute 🔇", ANA)
        run_jobs(app)
        assert participant_updates(standin, sids[ANA])[-1] == [("Muted", "true")]
        assert texts_to(standin, ANA)[-1] == "You are muted. Text UNMUTE to speak."
        text(client, "Parler", ANA)
        run_jobs(app)
        assert participant_updates(standin, sids[ANA])[-1] == [("Muted", "false")]

    def test_hand_is_raised_and_the_host_is_told(self, app, client, session, live, standin):
        occ, _ = live
        text(client, "HAND", ANA)
        run_jobs(app)
        assert by_name(session, occ)["Ana"].hand_raised is True
        assert texts_to(standin, HOST) == ["Ana raised their hand."]

    def test_host_commands_are_for_hosts(self, app, client, session, live, standin):
        occ, sids = live
        text(client, "MUTEALL", ANA)
        run_jobs(app)
        assert texts_to(standin, ANA)[-1] == "Only a host can do that."
        assert participant_updates(standin, sids[BOB]) == []
        text(client, "MUTEALL", HOST)
        text(client, "LOCK", HOST)
        run_jobs(app)
        assert participant_updates(standin, sids[BOB])
        session.refresh(occ)
        assert occ.locked
        text(client, "END MEETING", HOST)
        run_jobs(app)
        assert [r.get("Status") for r in standin.requests(method="POST")
                if r.path.endswith(f"/Conferences/{occ.conference_sid}.json")] == ["completed"]

    def test_plain_end_stays_an_opt_out(self, app, client, session, live):
        from telline.sms import consent
        text(client, "END", HOST)
        assert consent.is_opted_out(session, HOST)



class TestControlsFromSomeoneNotInAMeeting:
    """They work only on a meeting call: the sender is told so (and a member how to join one), and
    nothing lands in the coordinators' inbox."""

    @pytest.mark.parametrize(("body", "word"), [("MUTE", "MUTE"), ("unmute", "UNMUTE"), ("✋ Hand", "HAND"),
                                                ("LOCK", "LOCK"), ("End meeting", "END MEETING")])
    def test_a_member_is_told_how_to_join(self, app, client, session, group, line, standin, body, word):
        meeting(session, group, line, starts_in_minutes=180)
        member(session, group, ANA, "Ana")
        text(client, body, ANA)
        run_jobs(app)
        assert texts_to(standin, ANA) == [
            f"{word} works only while you are in a phone meeting. To join one, call +1 500-555-0006. "
            "Text NEXT for the next meeting's time and code."]
        assert session.scalars(sa.select(InboxItem)).all() == []

    def test_in_french(self, app, client, session, group, line, standin):
        meeting(session, group, line, starts_in_minutes=180)
        member(session, group, ANA, "Ana")
        text(client, "Muet", ANA)
        run_jobs(app)
        assert texts_to(standin, ANA) == [
            "MUET ne fonctionne que pendant une réunion téléphonique. Pour en rejoindre une, appelez le "
            "+1 500-555-0006. Envoyez PROCHAIN pour l'heure et le code de la prochaine."]
        assert session.scalars(sa.select(InboxItem)).all() == []

    def test_someone_who_is_not_a_member_is_only_told_when_it_works(self, app, client, session, group, line,
                                                                    standin):
        meeting(session, group, line, starts_in_minutes=180)
        text(client, "HAND", BOB)
        run_jobs(app)
        assert texts_to(standin, BOB) == ["HAND works only while you are in a phone meeting."]
        assert session.scalars(sa.select(InboxItem)).all() == []

    def test_a_member_who_has_left_the_call(self, app, client, session, live, standin):
        occ, sids = live
        event(client, occ, "participant-leave", sids[ANA])
        text(client, "UNMUTE", ANA)
        run_jobs(app)
        assert texts_to(standin, ANA) == [
            "UNMUTE works only while you are in a phone meeting. To join one, call +1 500-555-0006. "
            "Text NEXT for the next meeting's time and code."]
        assert participant_updates(standin, sids[ANA]) == []
        assert session.scalars(sa.select(InboxItem)).all() == []
