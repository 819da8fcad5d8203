"""A text that arrives while the database does not answer is parked in Redis, and stored and
routed by the replay job once it answers: Twilio does not retry an SMS webhook."""

from __future__ import annotations

import sqlalchemy as sa

from telline import create_app, jobs
from telline.models import Message
from telline.sms import consent, parked
from tests.conftest import make_settings
from tests.signing import post_signed
from tests.sms.conftest import LINE, add_member, outbound, run_jobs, texts_to

MEMBER = "+447911123456"


def _text_to_an_app_without_its_database(redis_url, tmp_path, sid: str, body: str):
    """POST a text to an app whose SQLite file cannot be opened (its directory is gone)."""
    missing = tmp_path / "gone"
    app = create_app(make_settings(f"sqlite:///{missing}/x.sqlite3", redis_url))
    missing.rmdir()
    return post_signed(app.test_client(), "/twilio/sms", {"MessageSid": sid, "AccountSid": "AC" + "1" * 32,
                                                         "From": MEMBER, "To": LINE, "Body": body})


def test_a_stop_sent_while_the_database_is_down_is_kept_then_honoured(app, session, group, redis_conn, tmp_path,
                                                                      redis_url, standin):
    add_member(session, group, MEMBER)
    r = _text_to_an_app_without_its_database(redis_url, tmp_path, "SM" + "1" * 32, "STOP")
    assert (r.status_code, r.content_type.startswith("text/xml")) == (200, True)
    assert "<Message" not in r.get_data(as_text=True)
    assert parked.waiting(redis_conn) == 1
    assert not consent.is_opted_out(session, MEMBER)

    assert jobs.replay_parked_texts() == 1  # the database answers again
    [stored] = session.scalars(sa.select(Message).where(Message.direction == "inbound")).all()
    assert (stored.twilio_sid, stored.from_number, stored.body) == ("SM" + "1" * 32, MEMBER, "STOP")
    assert consent.is_opted_out(session, MEMBER)
    run_jobs(app)
    assert len(texts_to(standin, MEMBER)) == 1  # the opt-out's one confirmation, late but sent
    assert parked.waiting(redis_conn) == 0 and jobs.replay_parked_texts() == 0


def test_texts_replay_oldest_first_and_one_stored_before_the_failure_is_not_handled_twice(
        app, client, session, group, redis_conn, tmp_path, redis_url):
    add_member(session, group, MEMBER)
    post_signed(client, "/twilio/sms", {"MessageSid": "SM" + "2" * 32, "From": MEMBER, "To": LINE, "Body": "first"})
    for sid, body in (("SM" + "2" * 32, "first"), ("SM" + "3" * 32, "second")):  # the first was stored after all
        _text_to_an_app_without_its_database(redis_url, tmp_path / sid, sid, body)
    assert jobs.replay_parked_texts() == 2
    inbound = session.scalars(sa.select(Message.body).where(Message.direction == "inbound")
                              .order_by(Message.id)).all()
    assert inbound == ["first", "second"]
    assert len([m for m in outbound(session) if m.kind == "reply"]) == 2  # one acknowledgement each


def test_a_parked_text_that_cannot_be_read_is_set_aside_and_holds_up_no_other(session, group, redis_conn, tmp_path,
                                                                             redis_url):
    redis_conn.lpush(parked.PARKED, '{"from an older version": true}')
    _text_to_an_app_without_its_database(redis_url, tmp_path, "SM" + "4" * 32, "hello")
    assert jobs.replay_parked_texts() == 1
    assert session.scalar(sa.select(Message.body).where(Message.direction == "inbound")) == "hello"
    assert redis_conn.lrange(parked.FAILED, 0, -1) == [b'{"from an older version": true}']
    assert parked.waiting(redis_conn) == 0
