"""POST /twilio/sms stores every text once (routing comes with the SMS issue)."""

import sqlalchemy as sa

from telline.models import Group, Line, Member, Message
from tests.signing import post_signed

LINE = "+15005550006"


def text(client, body="hello", sid="SM" + "a" * 32, sender="+33612345678", **extra):
    form = {"MessageSid": sid, "AccountSid": "AC" + "1" * 32, "From": sender, "To": LINE,
            "Body": body, "NumMedia": "0", **extra}
    return post_signed(client, "/twilio/sms", form)


def messages(session):
    return session.scalars(sa.select(Message).where(Message.direction == "inbound").order_by(Message.id)).all()


def add_line(session):
    group = Group(name="Carers", language="fr")
    session.add(group)
    session.flush()
    session.add(Line(group_id=group.id, phone_number=LINE))
    session.add(Member(display_name="Ana", phone="+33612345678"))
    session.commit()


def test_a_text_is_stored_with_its_line_and_member(client, session):
    add_line(session)
    r = text(client)
    assert r.status_code == 200 and r.content_type.startswith("text/xml")
    [m] = messages(session)
    assert (m.direction, m.from_number, m.to_number, m.body, m.status) == \
        ("inbound", "+33612345678", LINE, "hello", "received")
    assert m.line_id is not None and m.member_id is not None


def test_a_retried_webhook_is_stored_once(client, session):
    assert text(client).status_code == 200
    assert text(client).status_code == 200
    assert len(messages(session)) == 1


def test_unknown_numbers_anonymous_senders_empty_bodies_emoji_and_mms(client, session):
    text(client, sid="SM" + "1" * 32, sender="+447911123456")
    text(client, sid="SM" + "2" * 32, sender="anonymous")
    text(client, sid="SM" + "3" * 32, body="")
    text(client, sid="SM" + "4" * 32, body="merci 🙏 ça va")
    text(client, sid="MM" + "5" * 32, body="", NumMedia="1", MediaUrl0="https://api.twilio.com/x.jpg")
    rows = messages(session)
    assert [m.from_number for m in rows] == ["+447911123456", None, "+33612345678", "+33612345678",
                                              "+33612345678"]
    assert rows[3].body == "merci 🙏 ça va"
    assert rows[4].num_media == 1


def test_an_overlong_body_keeps_twilios_limit(client, session):
    text(client, body="é" * 2000)
    assert len(messages(session)[0].body) == 1600


def test_garbage_forms_get_400_and_store_nothing(client, session):
    assert post_signed(client, "/twilio/sms", {}).status_code == 400
    assert post_signed(client, "/twilio/sms", {"MessageSid": "hello"}).status_code == 400
    assert post_signed(client, "/twilio/sms", {"MessageSid": "SM" + "1" * 40}).status_code == 400
    r = text(client, NumMedia="lots")
    assert r.status_code == 200 and messages(session)[0].num_media == 0
    assert len(messages(session)) == 1
