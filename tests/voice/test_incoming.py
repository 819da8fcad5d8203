"""Calling in: every path ends in the meeting, a retry, or words that help — never silence."""

import pytest
import sqlalchemy as sa

from telline.models import Call, ConferenceParticipant, ConsentEvent, MeetingOccurrence, Message, utcnow
from telline.scheduling.occurrences import cancel
from telline.sms import consent
from telline.voice.directory import directory
from tests.signing import post_signed
from tests.sms.conftest import run_jobs, texts_to
from tests.voice.conftest import LINE, call, conference, meeting, member, parse, press, said


def test_a_call_to_an_unknown_number_hears_why_and_hangs_up(client, session):
    _, root = call(client, to="+15005559999")
    assert "not connected to a support group" in said(root) and root[-1].tag == "Hangup"


def test_the_caller_is_asked_for_the_code_with_a_fallback_after_the_gather(client, session, group, line):
    meeting(session, group, line)
    sid, root = call(client)
    gather, redirect = root
    assert gather.tag == "Gather" and gather.get("input") == "dtmf" and gather.get("finishOnKey") == "#"
    assert gather.get("action") == "http://telline.test/twilio/voice/code"
    assert "Welcome to Carers. Please enter your meeting code" in said(root)
    assert redirect.tag == "Redirect" and redirect.text == "http://telline.test/twilio/voice/code"


def test_the_right_code_opens_an_opaque_conference(client, session, group, line):
    series = meeting(session, group, line)
    sid, _ = call(client)
    conf = conference(press(client, sid, series.access_code))
    assert conf is not None
    name = conf.text
    assert name.startswith("tl-") and "Carers" not in name and "7911" not in name and len(name) <= 128
    assert conf.get("startConferenceOnEnter") == "false"  # members wait for the host, with hold music
    assert conf.get("endConferenceOnExit") == "false"
    assert conf.get("statusCallback") == "http://telline.test/twilio/voice/conference"
    assert conf.get("statusCallbackEvent") == "start end join leave mute hold"
    assert (conf.get("maxParticipants"), conf.get("beep"), conf.get("record")) == ("40", "false", "do-not-record")
    assert "7911" not in conf.get("participantLabel")
    row = session.scalar(sa.select(Call).where(Call.twilio_sid == sid))
    assert row.role == "member" and row.occurrence_id is not None


def test_the_host_pin_starts_the_meeting_and_its_end_rule_applies(client, session, group, line):
    series = meeting(session, group, line)
    sid, _ = call(client, sender="+447911123999")
    conf = conference(press(client, sid, series.host_pin + "#"))
    assert (conf.get("startConferenceOnEnter"), conf.get("endConferenceOnExit")) == ("true", "true")
    series.host_leaving_ends = False
    session.commit()
    sid, _ = call(client, sender="+447911123998")
    assert conference(press(client, sid, series.host_pin)).get("endConferenceOnExit") == "false"


def test_three_wrong_tries_then_a_goodbye_that_says_how_to_get_help(client, session, group, line):
    meeting(session, group, line)
    sid, _ = call(client)
    assert "that code did not work" in said(press(client, sid, "000000"))
    assert "did not hear a code" in said(press(client, sid))  # the prompt timed out
    root = press(client, sid, "12ab")  # not digits: a wrong code, not an error
    assert "could not find your meeting" in said(root) and "text HELP" in said(root)
    assert root[-1].tag == "Hangup"


def test_a_caller_who_keeps_failing_gets_one_try_a_call_but_the_right_code_still_works(client, session, group,
                                                                                        line):
    series = meeting(session, group, line)
    for _ in range(2):
        sid, _ = call(client)
        for _ in range(3):
            root = press(client, sid, "111111")
    assert "each call gets one try" in said(root)
    sid, root = call(client)  # asked for the code as anyone is (nothing read or written yet)…
    assert "enter your meeting code" in said(root)
    root = press(client, sid, "222222")  # …one wrong try ends the call…
    assert "each call gets one try" in said(root) and conference(root) is None and root[-1].tag == "Hangup"
    sid, root = call(client)
    assert conference(press(client, sid, series.access_code)) is not None  # …and the right code gets in
    sid, _ = call(client, sender="+447911123999")  # another caller keeps their three tries
    assert "that code did not work" in said(press(client, sid, "111111"))


def test_no_meeting_now_tells_the_next_one_and_offers_a_reminder(app, client, session, group, line, standin):
    meeting(session, group, line, starts_in_minutes=180)
    sid, root = call(client)
    assert "There is no meeting right now. The next Carers meeting is on" in said(root)
    gather = root.find("Gather")
    assert gather.get("numDigits") == "1" and "press 1" in said(root)
    assert gather.get("action") == "http://telline.test/twilio/voice/remind"
    root = press(client, sid, "1", path="/twilio/voice/remind")
    assert "We will text you before the meeting" in said(root)
    assert session.scalar(sa.select(ConsentEvent.source)) == "voice_menu"
    run_jobs(app)
    assert texts_to(standin, "+447911123456")[0].startswith("We'll text you before the Carers meeting on")
    reminder = session.scalar(sa.select(Message).where(Message.kind == "reminder"))
    assert reminder.status == "deferred" and reminder.send_after is not None


def test_no_reminder_without_a_1_and_none_offered_to_anonymous_callers(client, session, group, line):
    meeting(session, group, line, starts_in_minutes=180)
    sid, _ = call(client)
    assert "Goodbye" in said(press(client, sid, None, path="/twilio/voice/remind"))
    assert session.scalars(sa.select(ConsentEvent)).all() == []
    _, root = call(client, sender="anonymous")
    assert root.find("Gather") is None and "Goodbye" in said(root)


@pytest.mark.parametrize(("language", "sentence"), [
    ("en", "You have stopped texts from this number, so we cannot text you a reminder. To get texts again, "
           "text START to this number: nothing will be sent until then. Goodbye."),
    ("fr", "Vous avez arrêté les SMS de ce numéro : nous ne pouvons pas vous envoyer de rappel. Pour en "
           "recevoir de nouveau, envoyez START par SMS à ce numéro ; rien ne vous sera envoyé d'ici là. Au revoir."),
])
def test_a_caller_who_texted_stop_and_presses_1_is_told_to_text_start(app, client, session, group, line, standin,
                                                                        language, sentence):
    group.language = language
    meeting(session, group, line, starts_in_minutes=180)
    r = post_signed(client, "/twilio/sms", {"MessageSid": "SM" + "8" * 32, "From": "+447911123456", "To": LINE,
                                            "Body": "STOP"})
    assert r.status_code == 200
    run_jobs(app)
    ledger, messages = session.scalars(sa.select(ConsentEvent)).all(), session.scalars(sa.select(Message)).all()
    sid, _ = call(client)
    root = press(client, sid, "1", path="/twilio/voice/remind")
    assert said(root) == sentence and root[-1].tag == "Hangup"
    # Twilio refuses every text to this number until it texts START: no opt-in from the key press
    # overrides the STOP, and no text is queued that could not go.
    assert session.scalars(sa.select(ConsentEvent)).all() == ledger
    assert session.scalars(sa.select(Message)).all() == messages
    assert consent.is_opted_out(session, "+447911123456")


def test_no_meeting_at_all_says_how_to_reach_a_person(client, session, group, line):
    _, root = call(client)
    assert "no meeting planned" in said(root) and "text HELP" in said(root)


def test_a_cancelled_meeting_points_to_the_next_one(client, session, group, line):
    series = meeting(session, group, line)
    [(s, start)] = directory().by_id(session, line.id).on_now(utcnow())
    cancel(session, s.id, start)
    session.commit()
    sid, _ = call(client)
    root = press(client, sid, series.access_code)
    assert conference(root) is None and "The next Carers meeting is on" in said(root)


def test_a_locked_meeting_refuses_new_callers_but_not_hosts(client, session, group, line):
    series = meeting(session, group, line)
    sid, _ = call(client)
    press(client, sid, series.access_code)
    occurrence = session.scalar(sa.select(Call.occurrence_id).where(Call.twilio_sid == sid))
    session.get(MeetingOccurrence, occurrence).locked = True
    session.commit()
    sid, _ = call(client, sender="+447911123999")
    assert "closed to new callers" in said(press(client, sid, series.access_code))
    sid, _ = call(client, sender="+447911123998")
    assert conference(press(client, sid, series.host_pin)) is not None


def test_a_full_meeting_says_so(client, session, group, line):
    series = meeting(session, group, line, max_participants=2)
    sids = []
    for n in ("+447911123991", "+447911123992"):
        sid, _ = call(client, sender=n)
        press(client, sid, series.access_code)
        sids.append(sid)
    occurrence_id = session.scalar(sa.select(Call.occurrence_id).where(Call.twilio_sid == sids[0]))
    for sid in sids:
        session.add(ConferenceParticipant(conference_sid="CF" + "1" * 32, call_sid=sid, occurrence_id=occurrence_id,
                                          joined_at=utcnow()))
    session.commit()
    sid, _ = call(client, sender="+447911123993")
    assert "this meeting is full" in said(press(client, sid, series.access_code))


def test_caller_id_lets_known_members_skip_the_code_only_when_the_group_allows_it(client, session, group, line):
    series = meeting(session, group, line)
    member(session, group)
    _, root = call(client)
    assert root.find("Gather") is not None  # off by default: caller ID can be spoofed
    series.caller_id_joins = True
    session.commit()
    sid, root = call(client)
    assert "Press the hash key to join, or enter the host PIN" in said(root)  # a host may be a member too
    assert conference(press(client, sid, "")) is not None  # "#" (or nothing): in as a member
    sid, _ = call(client)
    assert conference(press(client, sid, series.host_pin)).get("startConferenceOnEnter") == "true"
    series.host_pin = None
    session.commit()
    _, root = call(client)
    assert conference(root) is not None  # no host PIN to wait for: straight in
    _, root = call(client, sender="anonymous")
    assert root.find("Gather") is not None
    _, root = call(client, sender="+447911123999")  # not a member
    assert root.find("Gather") is not None


def test_recorded_meetings_say_so_before_anyone_enters(client, session, group, line):
    series = meeting(session, group, line, record=True, announce_entries=True, wait_url="https://example.org/hold.mp3")
    sid, _ = call(client)
    root = press(client, sid, series.access_code)
    assert root[0].tag == "Say" and "this meeting is recorded" in root[0].text
    conf = conference(root)
    assert (conf.get("record"), conf.get("beep"), conf.get("waitUrl"), conf.get("waitMethod")) == \
        ("record-from-start", "true", "https://example.org/hold.mp3", "GET")


def test_a_french_group_speaks_french(client, session, group, line):
    group.language = "fr"
    session.commit()
    meeting(session, group, line)
    _, root = call(client)
    assert root.find("Gather/Say").get("language") == "fr-FR" and "Tapez le code" in said(root)


def test_the_join_path_records_one_call_per_call_sid(client, session, group, line):
    series = meeting(session, group, line)
    sid, _ = call(client)
    call(client, sid=sid)  # Twilio retried the webhook
    assert session.scalars(sa.select(Call)).all() == []  # asked for a code: nothing to keep yet
    first = press(client, sid, series.access_code)
    again = press(client, sid, series.access_code)  # …and retried the code's
    assert conference(first).text == conference(again).text
    rows = session.scalars(sa.select(Call)).all()
    assert [(r.twilio_sid, r.role, r.from_number, r.to_number) for r in rows] == [
        (sid, "member", "+447911123456", LINE)]


def test_a_caller_who_hangs_up_at_the_code_prompt_leaves_no_row(client, session, group, line):
    meeting(session, group, line)
    call(client)
    assert session.scalars(sa.select(Call)).all() == []


def test_digits_for_a_call_we_never_answered_still_get_valid_twiml(client, session, group, line):
    root = press(client, "CA" + "7" * 32, "123456")
    assert "not connected to a support group" in said(root)


def test_garbage_forms_get_400_not_500(client, session):
    from tests.signing import post_signed
    for path in ("/twilio/voice", "/twilio/voice/code", "/twilio/voice/remind"):
        assert post_signed(client, path, {}).status_code == 400
        assert post_signed(client, path, {"CallSid": "nope"}).status_code == 400


def test_anonymous_callers_use_a_code_and_are_recorded_without_a_number(client, session, group, line):
    series = meeting(session, group, line)
    sid, root = call(client, sender="anonymous")
    assert root.find("Gather") is not None
    assert conference(press(client, sid, series.access_code)) is not None
    row = session.scalar(sa.select(Call).where(Call.twilio_sid == sid))
    assert (row.from_number, row.to_number) == (None, LINE)


def test_name_recording_when_the_group_turns_it_on(app, client, session, group, line, standin):
    series = meeting(session, group, line, record_names=True)
    sid, _ = call(client)
    root = press(client, sid, series.access_code)
    record = root.find("Record")
    assert "say your first name" in said(root) and record.get("maxLength") == "4"
    assert record.get("action") == "http://telline.test/twilio/voice/name" and root[-1].tag == "Redirect"
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
    root = press(client, sid, None, path="/twilio/voice/name")  # no recording: still let in
    assert conference(root) is not None
    from tests.signing import post_signed
    r = post_signed(client, "/twilio/voice/name", {"CallSid": sid, "RecordingUrl": url})
    assert conference(parse(r)) is not None
    row = session.scalar(sa.select(Call).where(Call.twilio_sid == sid))
    assert row.name_recording_url == url
    r = post_signed(client, f"/twilio/voice/name-announcement/{row.id}", {"CallSid": "CA" + "0" * 32})
    assert f"<Play>{url}</Play>".encode() in r.data and b"has joined" in r.data


def test_a_recording_url_that_is_not_twilios_is_never_played(client, session, group, line):
    series = meeting(session, group, line, record_names=True)
    sid, _ = call(client)
    press(client, sid, series.access_code)
    from tests.signing import post_signed
    post_signed(client, "/twilio/voice/name", {"CallSid": sid, "RecordingUrl": "https://evil.example/x.mp3"})
    assert session.scalar(sa.select(Call.name_recording_url).where(Call.twilio_sid == sid)) is None
