"""Signed but crafted webhook values: every /twilio/* route answers 2xx/4xx, never a 5xx, and keeps what a
member sent.

A request that passes the signature check can still carry values Twilio never sends: NUL characters
(PostgreSQL refuses them in text), integers past 2³¹ (PostgreSQL's integer) or 2⁶³ (SQLite's), SIDs longer
than the 34 characters their columns hold, timestamps in year 1 or 9999. The webhooks parse and bound them;
every test here runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telline.models import (
    Call,
    Conference,
    ConferenceParticipant,
    InboxItem,
    Line,
    MeetingOccurrence,
    Message,
    MessageEvent,
    utcnow,
)
from telline.sms.outbound import send_text
from telline.voice.dialout import dial_out_members
from tests.signing import post_signed
from tests.sms.conftest import run_jobs, texts_to
from tests.voice.conftest import (
    LINE,
    call,
    meeting,
    member,
    new_group,
    press,
    settings_overrides,  # noqa: F401 — the fixture: the app talks to the stand-in
)

ANA, BOB = "+447911123456", "+447911123457"
ACCOUNT = "AC" + "1" * 32
OVER_INT32 = str(2**31)
OVER_INT64 = str(2**63)
_sids = iter(range(1, 10**6))


@pytest.fixture
def carers(session):
    """The group "Carers" and its line LINE (named apart from the conftests' `group`, which this module does
    not import)."""
    return new_group(session, timezone="Europe/London")


@pytest.fixture
def carers_line(session, carers):
    return session.scalar(sa.select(Line).where(Line.group_id == carers.id))


def text(client, body="hello", sid=None, **extra):
    form = {"MessageSid": sid or f"SM{next(_sids):032d}", "AccountSid": ACCOUNT, "From": ANA, "To": LINE,
            "Body": body, "NumMedia": "0", **extra}
    return post_signed(client, "/twilio/sms", form)


def inbound(session):
    return session.scalars(sa.select(Message).where(Message.direction == "inbound").order_by(Message.id)).all()


def acknowledged(standin) -> bool:
    return any("a coordinator will read your message" in body for body in texts_to(standin, ANA))


# --- texts ---------------------------------------------------------------------------------------
def test_a_text_with_nul_characters_is_kept_with_them_replaced_and_answered(app, client, session, carers, standin):
    member(session, carers, ANA, "Ana")
    r = text(client, "I can't\x00 sleep\x00")
    assert r.status_code == 200
    [kept] = inbound(session)
    assert kept.body == "I can't\ufffd sleep\ufffd"
    assert session.scalar(sa.select(InboxItem.message_id)) == kept.id
    run_jobs(app)
    assert acknowledged(standin)


@pytest.mark.parametrize("sid", ["SM" + "\x00" * 32, "SM" + "a" * 31 + "\x00", "SM" + "a" * 33, "SM" + "g" * 32,
                                 "SM", "XX" + "a" * 32])
def test_a_message_sid_twilio_could_not_have_sent_is_refused(client, session, carers, sid):
    assert text(client, sid=sid).status_code == 400
    assert inbound(session) == []


def test_a_huge_media_count_is_bounded_and_the_text_kept(client, session, carers):
    for count in (OVER_INT32, OVER_INT64, "-5", "lots"):
        assert text(client, body=f"pictures {count}", NumMedia=count).status_code == 200
    assert [(m.body, m.num_media) for m in inbound(session)] == [
        (f"pictures {OVER_INT32}", 10), (f"pictures {OVER_INT64}", 10), ("pictures -5", 0), ("pictures lots", 0)]


def test_a_text_whose_sid_an_outbound_text_already_has_is_kept_and_answered(app, client, session, carers, carers_line,
                                                                           standin):
    member(session, carers, ANA, "Ana")
    sent = send_text(session, line=carers_line, to=ANA, body="See you Tuesday", idempotency_key="k1")
    session.commit()
    run_jobs(app)
    session.refresh(sent)
    assert sent.twilio_sid
    r = text(client, "can I bring a friend?", sid=sent.twilio_sid)
    assert r.status_code == 200
    [kept] = inbound(session)
    assert (kept.body, kept.from_number, kept.twilio_sid) == ("can I bring a friend?", ANA, None)
    assert session.scalar(sa.select(InboxItem.message_id)) == kept.id
    session.refresh(sent)
    assert sent.twilio_sid is not None and sent.direction == "outbound"  # the sent text keeps its SID
    run_jobs(app)
    assert acknowledged(standin)
    assert text(client, "can I bring a friend?", sid=sent.twilio_sid).status_code == 200  # Twilio's retry
    assert len(inbound(session)) == 1


def test_text_fields_with_nul_are_read_as_twilio_would_have_meant_them(client, session, carers):
    r = text(client, "STOP", From="+44791112\x003456", To=LINE + "\x00", OptOutType="ST\x00OP")
    assert r.status_code == 200
    [kept] = inbound(session)
    assert (kept.from_number, kept.body) == (None, "STOP")


# --- message status callbacks -------------------------------------------------------------------------
def status(client, sid, value="delivered", **extra):
    return post_signed(client, "/twilio/sms/status", {"MessageSid": sid, "MessageStatus": value,
                                                      "AccountSid": ACCOUNT, **extra})


@pytest.mark.parametrize("code", [OVER_INT32, OVER_INT64, "-1", "3\x000003"])
def test_an_error_code_out_of_range_is_kept_as_unknown(client, session, code):
    sid = "SM" + "b" * 32
    assert status(client, sid, "undelivered", ErrorCode=code).status_code == 204
    [event] = session.scalars(sa.select(MessageEvent)).all()
    assert (event.twilio_sid, event.status, event.error_code) == (sid, "undelivered", None)


@pytest.mark.parametrize("sid", ["SM" + "\x00" * 32, "SM" + "b" * 40, "SM" + "b" * 31 + "\x00"])
def test_a_status_callback_with_a_crafted_sid_is_refused(client, session, sid):
    assert status(client, sid).status_code == 400
    assert session.scalars(sa.select(MessageEvent)).all() == []


# --- calls ---------------------------------------------------------------------------------------------
def parse_twiml(response):
    assert response.status_code == 200 and response.content_type.startswith("text/xml"), response.data[:300]
    root = ET.fromstring(response.get_data(as_text=True))
    assert root.tag == "Response"
    return root


VOICE_FORM_ROUTES = ["/twilio/voice", "/twilio/voice/code", "/twilio/voice/remind", "/twilio/voice/name",
                     "/twilio/voice/dialout/answer", "/twilio/voice/dialout/join", "/twilio/voice/dialout/status"]


@pytest.mark.parametrize("route", VOICE_FORM_ROUTES)
@pytest.mark.parametrize("sid", ["CA" + "\x00" * 32, "CA" + "c" * 33, "CA" + "c" * 31 + "\x00"])
def test_a_crafted_call_sid_is_refused_on_every_call_route(client, session, carers, carers_line, route, sid):
    assert post_signed(client, route, {"CallSid": sid, "From": ANA, "To": LINE}).status_code == 400


def test_crafted_call_fields_still_get_the_meeting_prompt(client, session, carers, carers_line):
    series = meeting(session, carers, carers_line)
    sid = "CA" + "d" * 32
    root = parse_twiml(post_signed(client, "/twilio/voice", {
        "CallSid": sid, "From": "+4479\x00" + "1" * 300, "To": LINE, "CallStatus": "ring\x00ing" * 10}))
    assert "Please enter your meeting code" in " ".join(el.text or "" for el in root.iter("Say"))
    root = parse_twiml(post_signed(client, "/twilio/voice/code", {
        "CallSid": sid, "From": "+4479\x00", "To": LINE, "Digits": series.access_code + "\x00",
        "CallStatus": "in-progress\x00" * 5}))
    assert root.find("./Dial/Conference") is not None
    parse_twiml(post_signed(client, "/twilio/voice/name", {"CallSid": sid, "RecordingUrl": "https://api.twilio.com/"
                                                           + "\x00" * 600}))


def test_a_dialled_member_gets_the_dial_in_by_text_whatever_the_crafted_status(app, client, session, carers,
                                                                               standin, occurrence):
    occ, _ = occurrence
    bob = member(session, carers, BOB, "Bob")
    bob.preferences = {"call_me": True}
    session.commit()
    dial_out_members(occ.id)
    sid = session.scalar(sa.select(Call.twilio_sid).where(Call.direction == "outbound"))
    r = post_signed(client, "/twilio/voice/dialout/status", {"CallSid": sid, "CallStatus": "no-\x00answer" * 3})
    assert r.status_code == 204
    run_jobs(app)
    assert any(body.startswith("We tried to call you") for body in texts_to(standin, BOB))


@pytest.mark.parametrize("path", ["/twilio/voice/announcement/", "/twilio/voice/name-announcement/"])
@pytest.mark.parametrize("number", [OVER_INT32, OVER_INT64, str(2**70)])
def test_ids_in_urls_past_the_columns_range_are_not_found(client, session, path, number):
    assert post_signed(client, path + number, {"CallSid": "CA" + "f" * 32}).status_code == 404


# --- conference callbacks -------------------------------------------------------------------------------
@pytest.fixture
def occurrence(client, session, carers, carers_line):
    """A meeting on now, with one caller seated and the conference's SID known."""
    series = meeting(session, carers, carers_line)
    sid, _ = call(client, sender=ANA)
    press(client, sid, series.access_code)
    occ = session.scalar(sa.select(MeetingOccurrence))
    occ.conference_sid = "CF" + "7" * 32
    session.commit()
    return occ, sid


def conference_event(client, occ, kind, seq, **extra):
    form = {"ConferenceSid": occ.conference_sid, "FriendlyName": occ.conference_name, "StatusCallbackEvent": kind,
            "SequenceNumber": str(seq), "AccountSid": ACCOUNT, "Timestamp": "Thu, 26 Nov 2026 19:00:00 +0000"}
    form.update(extra)
    return post_signed(client, "/twilio/voice/conference", form)


@pytest.mark.parametrize("seq", [OVER_INT32, OVER_INT64, "-1"])
def test_a_sequence_number_out_of_range_is_refused(client, session, occurrence, seq):
    occ, sid = occurrence
    assert conference_event(client, occ, "participant-join", seq, CallSid=sid).status_code == 400
    assert session.scalars(sa.select(ConferenceParticipant)).all() == []


@pytest.mark.parametrize("field,value", [("ConferenceSid", "CF" + "7" * 40), ("ConferenceSid", "CF" + "\x00" * 32),
                                         ("CallSid", "CA" + "8" * 40), ("CallSid", "CA" + "8" * 31 + "\x00")])
def test_a_crafted_sid_in_a_conference_callback_is_refused(client, session, occurrence, field, value):
    occ, sid = occurrence
    assert conference_event(client, occ, "participant-join", 1, **{"CallSid": sid, field: value}).status_code == 400
    assert session.scalars(sa.select(ConferenceParticipant)).all() == []


def test_nul_in_a_conference_callbacks_text_fields_is_harmless(client, session, occurrence):
    occ, sid = occurrence
    r = conference_event(client, occ, "participant-mute", 1, CallSid=sid, Muted="true\x00", Hold="\x00",
                         FriendlyName=occ.conference_name + "\x00")
    assert r.status_code == 204
    r = conference_event(client, occ, "participant-\x00join", 2, CallSid=sid)
    assert r.status_code == 204


def test_a_crafted_reason_for_a_conferences_end_is_bounded_and_kept(client, session, occurrence):
    occ, _ = occurrence
    r = conference_event(client, occ, "conference-end", 1, ReasonConferenceEnded="x\x00" + "y" * 500)
    assert r.status_code == 204
    [ended] = session.scalars(sa.select(Conference)).all()
    assert len(ended.end_reason) <= 64 and "\x00" not in ended.end_reason


@pytest.mark.parametrize("stamp", ["Mon, 01 Jan 0001 00:00:00 +0000", "Mon, 01 Jan 0001 00:30:00 +0100",
                                   "Fri, 31 Dec 9999 23:59:59 +0000", "Fri, 31 Dec 9999 23:59:59 -0100",
                                   "Sat, 01 Jan 1000 00:00:00 +0000"])
def test_absurd_timestamps_are_taken_as_now(client, session, occurrence, stamp):
    occ, sid = occurrence
    before = utcnow() - dt.timedelta(seconds=1)
    assert conference_event(client, occ, "participant-join", 1, CallSid=sid, Timestamp=stamp).status_code == 204
    assert conference_event(client, occ, "participant-leave", 2, CallSid=sid, Timestamp=stamp).status_code == 204
    assert conference_event(client, occ, "conference-end", 3, Timestamp=stamp).status_code == 204
    after = utcnow() + dt.timedelta(seconds=1)
    session.expire_all()
    [p] = session.scalars(sa.select(ConferenceParticipant)).all()
    assert before <= p.joined_at <= after and before <= p.left_at <= after
    # The conference ended (the meeting stays open for its slot: telline.voice.roster.apply).
    ended = session.get(Conference, p.conference_sid)
    assert before <= ended.ended_at <= after


# --- every route, random crafted forms ------------------------------------------------------------------
FIELDS = ["MessageSid", "SmsSid", "AccountSid", "From", "To", "Body", "NumMedia", "OptOutType", "MessageStatus",
          "SmsStatus", "ErrorCode", "CallSid", "Digits", "CallStatus", "ConferenceSid", "FriendlyName",
          "StatusCallbackEvent", "SequenceNumber", "Muted", "Hold", "Timestamp", "RecordingUrl", "MediaUrl0",
          "ReasonConferenceEnded"]
CRAFTED = st.one_of(
    st.text(max_size=40),  # NUL and every other code point included
    st.sampled_from(["SM" + "1" * 32, "MM" + "2" * 32, "CA" + "3" * 32, "CF" + "7" * 32, "CA" + "3" * 40,
                     "SM\x00" + "1" * 31, ANA, LINE, "anonymous", "client:x", "1", "#", "true", "-1", "delivered",
                     "undelivered", "in-progress", "participant-join", "participant-leave", "conference-end",
                     "STOP", OVER_INT32, OVER_INT64, str(2**70), "Mon, 01 Jan 0001 00:00:00 +0000",
                     "Fri, 31 Dec 9999 23:59:59 -0100", "https://api.twilio.com/" + "x" * 600]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str))
IDS = st.one_of(st.integers(min_value=0, max_value=2**70), st.sampled_from([1, 2**31 - 1, 2**31, 2**63]))


def twilio_routes(app) -> list[str]:
    """Every route under /twilio, as Flask has them: a route added later is crafted at too."""
    return sorted(rule.rule for rule in app.url_map.iter_rules()
                  if rule.rule.startswith("/twilio") and "POST" in (rule.methods or ()))


def test_the_crafted_forms_reach_every_twilio_route(app):
    paths = {rule.split("<")[0] for rule in twilio_routes(app)}
    assert {"/twilio/sms", "/twilio/sms/status", "/twilio/voice", "/twilio/voice/conference",
            "/twilio/voice/announcement/", "/twilio/voice/name-announcement/"} <= paths


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), form=st.dictionaries(st.sampled_from(FIELDS), CRAFTED, max_size=10), item_id=IDS)
def test_crafted_forms_on_every_twilio_route_never_get_a_5xx(app, client, session, occurrence, data, form,
                                                            item_id):
    rule = data.draw(st.sampled_from(twilio_routes(app)))
    path = rule.split("<")[0] + str(item_id) if "<" in rule else rule
    r = post_signed(client, path, form)
    assert r.status_code < 500, (path, form, r.data[:300])
    if r.status_code == 200:
        parse_twiml(r)
    elif r.status_code == 204:
        assert r.data == b""
    session.rollback()
