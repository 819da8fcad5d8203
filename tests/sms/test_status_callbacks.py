"""POST /twilio/sms/status: forward only, repeats harmless, early arrivals kept."""

import pytest
import sqlalchemy as sa

from telline.models import MessageEvent
from telline.sms import consent
from telline.sms.outbound import send_text
from tests.signing import post_signed
from tests.sms.conftest import add_member, run_jobs

ANA = "+447911123456"


def callback(client, sid, status, error_code=None):
    form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "1" * 32}
    if error_code:
        form["ErrorCode"] = str(error_code)
    return post_signed(client, "/twilio/sms/status", form)


@pytest.fixture
def sent(app, session, group, line):
    msg = send_text(session, line=line, to=ANA, body="hello", idempotency_key="k")
    session.commit()
    run_jobs(app)
    session.refresh(msg)
    return msg


def status_after(session, msg):
    session.refresh(msg)
    return msg.status


def test_statuses_move_forward(client, session, sent):
    assert callback(client, sent.twilio_sid, "sent").status_code == 204
    assert status_after(session, sent) == "sent"
    callback(client, sent.twilio_sid, "delivered")
    assert status_after(session, sent) == "delivered"


def test_late_and_repeated_callbacks_never_move_a_message_back(client, session, sent):
    for status in ("delivered", "sent", "queued", "delivered", "sending", "sent"):
        assert callback(client, sent.twilio_sid, status).status_code == 204
    assert status_after(session, sent) == "delivered"
    assert len(session.scalars(sa.select(MessageEvent)).all()) == 4  # one per distinct status


def test_read_after_delivered_is_progress(client, session, sent):
    callback(client, sent.twilio_sid, "delivered")
    callback(client, sent.twilio_sid, "read")
    assert status_after(session, sent) == "read"


def test_a_callback_before_the_sid_is_known_is_applied_when_it_is(app, client, session, group, line):
    msg = send_text(session, line=line, to=ANA, body="hello", idempotency_key="early")
    session.commit()
    sid = "SM" + "e" * 32
    callback(client, sid, "sent")  # Twilio's callback wins the race against the send job…
    from telline.sms.delivery import _handed_over
    _handed_over(session, msg, sid, "queued")  # …which then records the SID Twilio answered with
    assert status_after(session, msg) == "sent"


def test_delivery_errors_flag_the_member_and_record_carrier_opt_outs(app, client, session, group, line):
    member = add_member(session, group)
    msg = send_text(session, line=line, to=ANA, body="hello", idempotency_key="x", member_id=member.id)
    session.commit()
    run_jobs(app)
    session.refresh(msg)
    callback(client, msg.twilio_sid, "undelivered", 30006)
    session.refresh(member)
    assert (status_after(session, msg), msg.error_code, member.sms_status) == ("undelivered", 30006, "landline")
    other = send_text(session, line=line, to=ANA, body="again", idempotency_key="y", member_id=member.id)
    session.commit()
    run_jobs(app)  # a landline is not texted again
    assert status_after(session, other) == "refused"


def test_a_21610_failure_records_the_opt_out(client, session, sent):
    callback(client, sent.twilio_sid, "failed", 21610)
    assert consent.is_opted_out(session, ANA)


def test_unknown_sids_are_accepted_and_kept(client, session):
    assert callback(client, "SM" + "0" * 32, "delivered").status_code == 204
    assert session.scalar(sa.select(MessageEvent.status)) == "delivered"


@pytest.mark.parametrize("form", [{}, {"MessageSid": "SM" + "1" * 32}, {"MessageSid": "XX1", "MessageStatus": "sent"},
                                  {"MessageSid": "SM" + "1" * 32, "MessageStatus": "exploded"}])
def test_garbage_gets_400(client, session, form):
    assert post_signed(client, "/twilio/sms/status", form).status_code == 400
    assert session.scalars(sa.select(MessageEvent)).all() == []


def test_unsigned_callbacks_get_403(client, session, sent):
    r = client.post("/twilio/sms/status", data={"MessageSid": sent.twilio_sid, "MessageStatus": "delivered"})
    assert r.status_code == 403
    assert status_after(session, sent) == "queued"
