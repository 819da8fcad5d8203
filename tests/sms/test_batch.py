"""A broadcast's batch job: deliver()'s rules for every text, a few statements for the whole batch."""

import datetime as dt

import pytest
import sqlalchemy as sa

from telline import db
from telline.models import Line, Member, Message
from telline.sms import batch, consent, delivery
from telline.sms.broadcast import fan_out, start_broadcast
from telline.sms.status import record_status
from telline.twilio.gateway import gateway
from tests.sms.conftest import add_member, run_jobs, scheduled_count


def broadcast_rows(session, group, n, body="Group moves to Thursday 7pm, same number."):
    """n members and their broadcast rows, fanned out but not sent: the ids a batch job gets."""
    members = [add_member(session, group, f"+4479112{i:05d}") for i in range(n)]
    broadcast = start_broadcast(session, group_id=group.id, body=body)
    session.flush()
    fan_out(broadcast.id)
    from telline.job_queues import queues
    for q in queues().in_order():
        q.empty()  # the test runs the batch itself
    ids = list(session.scalars(sa.select(Message.id).where(Message.broadcast_id == broadcast.id)
                               .order_by(Message.id)))
    return members, ids


def rows(session, ids):
    session.expire_all()
    return session.scalars(sa.select(Message).where(Message.id.in_(ids)).order_by(Message.id)).all()


def test_a_batch_sends_each_text_once_and_records_what_twilio_said(app, session, group, standin):
    members, ids = broadcast_rows(session, group, 12)
    assert batch.deliver_batch(ids) == {"queued": 12}
    sent = standin.messages_sent()
    assert sorted(m["to"] for m in sent) == sorted(m.phone for m in members)
    by_sid = {m["sid"]: m["to"] for m in sent}
    for msg in rows(session, ids):
        assert (msg.status, msg.attempts) == ("queued", 1)
        assert by_sid[msg.twilio_sid] == msg.to_number and msg.sent_at is not None
    assert batch.deliver_batch(ids) == {"queued": 12}  # a repeated job sends nothing more
    assert len(standin.messages_sent()) == 12


def test_a_batch_costs_a_few_statements_not_a_few_per_text(app, session, group, standin):
    _, ids = broadcast_rows(session, group, 40)
    statements = []
    counting = lambda conn, cursor, statement, params, context, many: statements.append(statement)  # noqa: E731
    engine = db.database().engine
    sa.event.listen(engine, "before_cursor_execute", counting)
    try:
        batch.deliver_batch(ids)
    finally:
        sa.event.remove(engine, "before_cursor_execute", counting)
    work = [s for s in statements if s.lstrip().split()[0].upper() in ("SELECT", "UPDATE", "INSERT", "DELETE")]
    # read rows, lines, members; claim; write SIDs; look for early callbacks (deliver(): 8 a text)
    assert len(work) <= 6, work
    assert len(standin.messages_sent()) == 40


def test_a_number_that_opted_out_is_refused_by_the_claim_itself(app, session, group, standin):
    members, ids = broadcast_rows(session, group, 5)
    consent.record(session, members[2].phone, consent.OPT_OUT, "keyword")
    session.commit()
    assert batch.deliver_batch(ids) == {"queued": 4, "refused": 1}
    assert members[2].phone not in [m["to"] for m in standin.messages_sent()]
    refused = rows(session, ids)[2]
    assert (refused.status, refused.error_message) == ("refused", "the number opted out")


def test_on_a_slow_line_consent_is_checked_just_before_each_send(app, session, group, line, standin):
    line.sms_rate = 2  # a chunk is half a second of the rate: one text
    session.commit()
    members, ids = broadcast_rows(session, group, 3)
    send = gateway().send_sms

    def send_then_third_member_stops(**kw):
        sent = send(**kw)
        if kw["to"] == members[0].phone:  # while the first text is on its way, the third member texts STOP
            consent.record(session, members[2].phone, consent.OPT_OUT, "keyword")
            session.commit()
        return sent

    gateway().send_sms = send_then_third_member_stops
    try:
        assert batch.deliver_batch(ids) == {"queued": 2, "refused": 1}
    finally:
        del gateway().send_sms
    assert [m["to"] for m in standin.messages_sent()] == [members[0].phone, members[1].phone]


def test_a_text_claimed_by_another_job_is_not_sent_twice(app, session, group, standin):
    _, ids = broadcast_rows(session, group, 3)
    session.execute(sa.update(Message).where(Message.id == ids[1]).values(status="submitting", attempts=1))
    session.commit()
    assert batch.deliver_batch(ids) == {"queued": 2, "submitting": 1}
    assert len(standin.messages_sent()) == 2 and scheduled_count() == 1  # the batch looks again later


def test_quiet_hours_and_flagged_numbers_take_delivers_own_path(app, session, group, standin):
    members, ids = broadcast_rows(session, group, 4)
    night = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    group.quiet_start, group.quiet_end = (night - dt.timedelta(hours=1)).time(), (night + dt.timedelta(hours=1)).time()
    members[1].timezone = "UTC"
    members[3].sms_status = "landline"
    session.commit()
    assert batch.deliver_batch(ids) == {"deferred": 3, "refused": 1}
    assert standin.messages_sent() == []
    assert [m.status for m in rows(session, ids)] == ["deferred", "deferred", "deferred", "refused"]


class TestTwilioErrorsMidChunk:
    def test_a_number_twilio_rejects_fails_alone(self, app, session, group, standin):
        members, ids = broadcast_rows(session, group, 5)
        # Twilio refuses a number it does not take (the stand-in: anything not E.164) with 21211
        session.execute(sa.update(Message).where(Message.id == ids[2]).values(to_number="+0123"))
        session.commit()
        assert batch.deliver_batch(ids) == {"queued": 4, "failed": 1}
        statuses = [(m.status, m.error_code) for m in rows(session, ids)]
        assert statuses == [("queued", None)] * 2 + [("failed", 21211)] + [("queued", None)] * 2
        assert session.get(Member, members[2].id).sms_status == "invalid"
        assert len(standin.messages_sent()) == 4

    def test_a_slow_down_mid_chunk_retries_that_text_only(self, app, session, group, standin):
        _, ids = broadcast_rows(session, group, 5)
        standin.fail(429, 20429, "Too Many Requests")
        assert batch.deliver_batch(ids) == {"queued": 4, "retrying": 1}
        assert scheduled_count() == 1
        run_jobs(app, scheduled=True)
        assert [m.status for m in rows(session, ids)] == ["queued"] * 5
        assert len({m["to"] for m in standin.messages_sent()}) == len(standin.messages_sent()) == 5

    def test_a_dropped_answer_mid_chunk_is_reconciled_not_resent(self, app, session, group, standin):
        _, ids = broadcast_rows(session, group, 4)
        standin.drop(method="POST", path_suffix="Messages.json")  # the first send: created, never answered
        assert batch.deliver_batch(ids) == {"queued": 4}
        sent = standin.messages_sent()
        assert len(sent) == 4
        assert {m.twilio_sid for m in rows(session, ids)} == {m["sid"] for m in sent}


def test_when_the_line_is_busy_the_chunk_goes_back_unsent(app, session, group, line, standin, monkeypatch):
    line.sms_rate = 10
    session.commit()
    _, ids = broadcast_rows(session, group, 4)
    for _ in range(10):  # another worker has booked this second's slots
        assert delivery.limiter().acquire(line.phone_number, 10, timeout=0)
    monkeypatch.setattr(delivery, "RATE_WAIT", 0.0)
    assert batch.deliver_batch(ids) == {"pending": 4}
    assert [(m.status, m.attempts) for m in rows(session, ids)] == [("pending", 0)] * 4
    assert standin.messages_sent() == [] and scheduled_count() == 4
    monkeypatch.setattr(delivery, "RATE_WAIT", 30.0)
    run_jobs(app, scheduled=True)
    assert [m.status for m in rows(session, ids)] == ["queued"] * 4


def test_a_status_callback_that_beats_the_batch_is_applied(app, session, group, standin):
    _, ids = broadcast_rows(session, group, 3)
    send = gateway().send_sms

    def send_and_deliver_at_once(**kw):
        sent = send(**kw)
        record_status(session, sent.sid, "delivered", None)  # Twilio's callback, before the SID is written
        return sent

    gateway().send_sms = send_and_deliver_at_once
    try:
        batch.deliver_batch(ids)
    finally:
        del gateway().send_sms
    assert [m.status for m in rows(session, ids)] == ["delivered"] * 3


@pytest.mark.parametrize("rate,unit,segments,size", [(100, "messages", 1, 50), (100, "segments", 3, 16),
                                                     (2, "messages", 1, 1), (0.5, "messages", 1, 1)])
def test_a_chunk_is_half_a_second_of_the_lines_rate(rate, unit, segments, size):
    line = Line(id=1, phone_number="+15005550006", sms_rate=rate, sms_rate_unit=unit)
    ready = [(Message(id=i, segments=segments), line) for i in range(60)]
    chunks = [len(chunk) for _, chunk in batch._chunks(ready)]
    assert chunks[0] == min(size, 60) and sum(chunks) == 60
