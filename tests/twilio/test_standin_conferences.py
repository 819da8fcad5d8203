"""The stand-in's conferences: Twilio's rules for waiting, starting and ending, and the signed
conference status callbacks for what calls do and for what the REST API is asked."""

from __future__ import annotations

import datetime as dt

import pytest
from twilio.request_validator import RequestValidator

from tests.standin_plugin import ACCOUNT_SID, AUTH_TOKEN

LINE, ANA, BOB, HOST = "+15005550006", "+15005550001", "+15005550002", "+15005550003"
EVENTS = "start end join leave mute hold"
T0 = dt.datetime(2026, 11, 26, 19, 0, tzinfo=dt.UTC)


def enter(standin, number, url, *, host=False, events=EVENTS, name="room"):
    sid = standin.incoming_call(number, LINE, account_sid=ACCOUNT_SID)
    standin.enter_conference(sid, name, start_conference_on_enter=host, end_conference_on_exit=host,
                             status_callback=url, status_callback_event=events, label="host" if host else None)
    return sid


def kinds(received):
    return [(form["StatusCallbackEvent"], form.get("CallSid")) for _, form, _ in received]


def test_callers_wait_for_a_moderator_then_the_conference_starts_and_says_so(standin, receiver):
    standin.clock = lambda: T0
    ana = enter(standin, ANA, f"{receiver.url}/cb")
    conference = standin.participant(ana)["conference_sid"]
    assert standin.conference_named("room")["status"] == "init"  # Ana hears hold music
    host = enter(standin, HOST, f"{receiver.url}/cb", host=True)

    assert standin.wait_callbacks()
    assert standin.conference_named("room")["status"] == "in-progress"
    assert kinds(receiver.received) == [("participant-join", ana), ("participant-join", host),
                                        ("conference-start", None)]
    validator = RequestValidator(AUTH_TOKEN)
    for number, (url, form, signature) in enumerate(receiver.received, start=1):
        assert validator.validate(url, form, signature) and url == f"{receiver.url}/cb"
        assert (form["ConferenceSid"], form["FriendlyName"], form["AccountSid"], form["SequenceNumber"],
                form["Timestamp"]) == (conference, "room", ACCOUNT_SID, str(number), "Thu, 26 Nov 2026 19:00:00 +0000")
    join = receiver.received[1][1]
    assert (join["Muted"], join["Hold"], join["EndConferenceOnExit"], join["StartConferenceOnEnter"],
            join["ParticipantLabel"]) == ("false", "false", "true", "true", "host")
    assert [c["status"] for c in standin.callbacks_sent()] == [200, 200, 200]  # what the receiver answered


def test_rest_moderation_is_told_back_through_the_callbacks(standin, standin_gateway, receiver):
    ana, host = enter(standin, ANA, f"{receiver.url}/cb"), enter(standin, HOST, f"{receiver.url}/cb", host=True)
    bob = enter(standin, BOB, f"{receiver.url}/cb")
    conference = standin.participant(ana)["conference_sid"]
    standin_gateway.update_participant(conference, ana, muted=True)
    standin_gateway.update_participant(conference, ana, muted=True)  # no change: no event
    standin_gateway.update_participant(conference, ana, muted=False, hold=True)
    standin_gateway.remove_participant(conference, bob)
    assert standin.call(bob)["status"] == "in-progress"  # kicked: its TwiML goes on after the <Dial>
    standin_gateway.update_conference(conference, status="completed")

    assert standin.wait_callbacks()
    assert kinds(receiver.received)[4:] == [
        ("participant-mute", ana), ("participant-unmute", ana), ("participant-hold", ana),
        ("participant-leave", bob), ("participant-leave", ana), ("participant-leave", host), ("conference-end", None)]
    forms = [form for _, form, _ in receiver.received]
    assert forms[7]["ReasonParticipantLeft"] == "participant_kicked"
    assert forms[8]["ReasonParticipantLeft"] == "conference_ended_via_api"
    assert (forms[-1]["ReasonConferenceEnded"], "CallSidEndingConference" in forms[-1]) == \
        ("conference-ended-via-api", False)
    assert [int(form["SequenceNumber"]) for form in forms] == list(range(1, 12))
    assert standin.participants_in(conference) == []


def test_the_host_hanging_up_ends_it_and_only_asked_for_events_are_sent(standin, receiver):
    ana = enter(standin, ANA, f"{receiver.url}/cb", events="end")  # the first participant's settings hold
    host = enter(standin, HOST, f"{receiver.url}/cb", host=True)
    standin.hang_up(host)

    assert standin.wait_callbacks()
    [(_, form, _)] = receiver.received
    assert (form["StatusCallbackEvent"], form["ReasonConferenceEnded"], form["CallSidEndingConference"]) == \
        ("conference-end", "participant-with-end-conference-on-exit-left", host)
    assert [e["StatusCallbackEvent"] for e in standin.conference_events()] == [
        "participant-join", "participant-join", "conference-start", "participant-leave", "participant-leave",
        "conference-end"]
    assert standin.call(host)["status"] == "completed" and standin.call(ana)["status"] == "in-progress"
    assert standin.participant(ana) is None


def test_held_callbacks_wait_to_be_delivered_in_order_from_the_callers_thread(standin):
    standin.hold_callbacks = True
    sent = []
    ana = enter(standin, ANA, "https://telline.example/cb")
    enter(standin, HOST, "https://telline.example/cb", host=True)

    assert standin.callbacks_sent() == []
    statuses = standin.deliver_callbacks(lambda url, form, headers: sent.append((url, form, headers)) or 204)
    assert statuses == [204, 204, 204] and standin.deliver_callbacks(lambda *a: 500) == []
    assert [form["StatusCallbackEvent"] for _, form, _ in sent] == ["participant-join", "participant-join",
                                                                     "conference-start"]
    url, form, headers = sent[0]
    assert form["CallSid"] == ana and RequestValidator(AUTH_TOKEN).validate(url, form, headers["X-Twilio-Signature"])
    standin.reset()
    assert standin.hold_callbacks is False and standin.conference_events() == []


def test_a_full_conference_turns_the_next_caller_away(standin):
    first = standin.incoming_call(ANA, LINE, account_sid=ACCOUNT_SID)
    second = standin.incoming_call(BOB, LINE, account_sid=ACCOUNT_SID)
    third = standin.incoming_call(HOST, LINE, account_sid=ACCOUNT_SID)
    assert standin.enter_conference(first, "small", max_participants=2) is not None
    assert standin.enter_conference(second, "small", max_participants=2) is not None
    assert standin.enter_conference(third, "small", max_participants=2) is None
    with pytest.raises(ValueError):
        standin.enter_conference(first, "small")  # already in
