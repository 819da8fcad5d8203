"""POST /twilio/voice: the caller always hears something and the call is recorded once."""

import xml.etree.ElementTree as ET

import sqlalchemy as sa

from telline.models import Call, Group, Line, Member
from tests.signing import post_signed

LINE = "+15005550006"


def call(client, sender="+33612345678", to=LINE, sid="CA" + "a" * 32):
    return post_signed(client, "/twilio/voice", {"CallSid": sid, "AccountSid": "AC" + "1" * 32,
                                                 "From": sender, "To": to, "CallStatus": "ringing",
                                                 "Direction": "inbound"})


def verbs(response):
    root = ET.fromstring(response.get_data(as_text=True))
    assert root.tag == "Response"
    return [(el.tag, el.attrib.get("language"), (el.text or "").strip()) for el in root]


def test_a_call_to_an_unknown_number_hears_why_and_hangs_up(client, session):
    r = call(client, to="+15005559999")
    assert r.status_code == 200 and r.content_type.startswith("text/xml")
    [say, hangup] = verbs(r)
    assert say[0] == "Say" and "not connected to a support group" in say[2]
    assert hangup[0] == "Hangup"


def test_a_french_group_greets_in_french_and_records_the_call(client, session):
    group = Group(name="Aidants", language="fr", timezone="Europe/Paris")
    session.add(group)
    session.flush()
    session.add(Line(group_id=group.id, phone_number=LINE))
    session.add(Member(display_name="Ana", phone="+33612345678"))
    session.commit()
    [say, hangup] = verbs(call(client))
    assert say[1] == "fr-FR" and "pas de réunion" in say[2]
    [row] = session.scalars(sa.select(Call)).all()
    assert (row.from_number, row.to_number, row.direction) == ("+33612345678", LINE, "inbound")
    assert row.member_id is not None and row.line_id is not None


def test_a_retried_webhook_records_one_call(client, session):
    call(client)
    call(client)
    assert len(session.scalars(sa.select(Call)).all()) == 1


def test_anonymous_and_client_callers_are_recorded_without_a_number(client, session):
    call(client, sender="anonymous", sid="CA" + "1" * 32)
    call(client, sender="client:alice", sid="CA" + "2" * 32)
    assert session.scalars(sa.select(Call.from_number)).all() == [None, None]


def test_garbage_forms_get_400(client, session):
    assert post_signed(client, "/twilio/voice", {}).status_code == 400
    assert post_signed(client, "/twilio/voice", {"CallSid": "12"}).status_code == 400
    assert session.scalars(sa.select(Call)).all() == []
