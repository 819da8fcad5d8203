"""Dial-out at meeting start, and every voice route answering random forms without a 5xx."""

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telline.models import Call, MeetingOccurrence
from telline.voice.dialout import dial_out_members
from tests.signing import post_signed
from tests.sms.conftest import run_jobs, texts_to
from tests.voice.conftest import call, conference, meeting, member, press, said

ANA = "+447911123456"


@pytest.fixture
def started(client, session, group, line, standin):
    series = meeting(session, group, line)
    ana = member(session, group, ANA, "Ana")
    ana.preferences = {"call_me": True}
    member(session, group, "+447911123457", "Bob")  # did not ask to be called
    session.commit()
    sid, _ = call(client, sender="+447911123900")
    press(client, sid, series.host_pin)
    occ = session.scalar(sa.select(MeetingOccurrence))
    occ.conference_sid = "CF" + "5" * 32
    session.commit()
    return series, occ


def test_members_who_asked_are_dialled_when_the_meeting_starts(app, client, session, started, standin):
    series, occ = started
    r = post_signed(client, "/twilio/voice/conference", {
        "ConferenceSid": occ.conference_sid, "FriendlyName": occ.conference_name,
        "StatusCallbackEvent": "conference-start", "SequenceNumber": "1"})
    assert r.status_code == 204
    run_jobs(app)
    [dialled] = [r for r in standin.requests(method="POST") if r.path.endswith("/Calls.json")]
    assert dialled.get("To") == ANA and dialled.get("Url") == "http://telline.test/twilio/voice/dialout/answer"
    assert dial_out_members(occ.id) == 0  # twice: nobody is dialled twice


def dialled_call(session):
    return session.scalar(sa.select(Call).where(Call.direction == "outbound"))


def test_the_dialled_member_must_press_1_before_joining(app, client, session, started, standin):
    series, occ = started
    dial_out_members(occ.id)
    sid = dialled_call(session).twilio_sid
    root = press(client, sid, None, path="/twilio/voice/dialout/answer")
    gather = root.find("Gather")
    assert gather.get("numDigits") == "1" and "press 1" in said(root)
    assert conference(press(client, sid, "1", path="/twilio/voice/dialout/join")).text == occ.conference_name
    assert "Goodbye" in said(press(client, sid, None, path="/twilio/voice/dialout/join"))  # a voicemail


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed", "completed"])
def test_an_unreached_member_gets_the_dial_in_by_text(app, client, session, started, standin, status):
    series, occ = started
    dial_out_members(occ.id)
    sid = dialled_call(session).twilio_sid
    r = post_signed(client, "/twilio/voice/dialout/status", {"CallSid": sid, "CallStatus": status})
    assert r.status_code == 204
    run_jobs(app)
    [sms] = texts_to(standin, ANA)
    assert "We tried to call you for the Carers meeting" in sms and series.access_code in sms


VOICE_ROUTES = ["/twilio/voice", "/twilio/voice/code", "/twilio/voice/remind", "/twilio/voice/conference",
                "/twilio/voice/dialout/answer", "/twilio/voice/dialout/join", "/twilio/voice/dialout/status",
                "/twilio/voice/announcement/1"]
FIELDS = ["CallSid", "From", "To", "Digits", "CallStatus", "ConferenceSid", "FriendlyName", "StatusCallbackEvent",
          "SequenceNumber", "Muted", "Hold", "Timestamp", "AccountSid"]
values = st.one_of(st.text(max_size=40), st.sampled_from(["CA" + "1" * 32, "CF" + "2" * 32, "+447911123456",
                                                          "anonymous", "client:x", "1", "#", "true", "-1",
                                                          "participant-join", "conference-end", "99999999999999"]))


@pytest.fixture
def meeting_on(client, session, group, line):
    """A meeting on now with a caller already in it, so random forms reach deep paths too."""
    series = meeting(session, group, line)
    sid, _ = call(client, sender=ANA, sid="CA" + "1" * 32)
    press(client, sid, series.access_code)
    return series


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(VOICE_ROUTES), form=st.dictionaries(st.sampled_from(FIELDS), values, max_size=8))
def test_random_forms_never_get_a_5xx(client, session, meeting_on, route, form):
    r = post_signed(client, route, form)
    assert r.status_code < 500, (route, form, r.data[:300])
    session.rollback()


@pytest.mark.parametrize("body,wanted", [("Call me", True), ("Appelez-moi !", True), ("no call", False),
                                         ("pas d'appel", False), ("Pas d\u2019appel 🙅\u200d♀️", False),
                                         ("📞 call me!", True)])
def test_members_choose_to_be_called_by_text(app, client, session, group, line, standin, body, wanted):
    ana = member(session, group, ANA, "Ana")
    r = post_signed(client, "/twilio/sms", {"MessageSid": "SM" + "3" * 32, "From": ANA, "To": line.phone_number,
                                            "Body": body})
    assert r.status_code == 200
    session.refresh(ana)
    assert ana.preferences.get("call_me") is wanted
    run_jobs(app)
    assert texts_to(standin, ANA)[0].startswith(("We'll call you", "Nous vous appellerons") if wanted
                                                 else ("We won't call you", "Nous ne vous appellerons"))
