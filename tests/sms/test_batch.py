"""A broadcast's batch job: deliver()'s rules for every text, a few statements for the whole batch."""

import datetime as dt
import itertools
import time

import pytest
import sqlalchemy as sa

from telline import db
from telline.models import Line, Member, Message, Task
from telline.sms import batch, consent, delivery, send_pool
from telline.sms.broadcast import fan_out, start_broadcast
from telline.sms.status import record_status
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
    # read rows, lines, members; claim the chunk; write the SIDs and look for early callbacks as the
    # answers come and once all are in (deliver(): 8 a text)
    assert len(work) <= 8, work
    assert len(standin.messages_sent()) == 40


def test_a_number_that_opted_out_is_refused_by_the_claim_itself(app, session, group, standin):
    members, ids = broadcast_rows(session, group, 5)
    consent.record(session, members[2].phone, consent.OPT_OUT, "keyword")
    session.commit()
    assert batch.deliver_batch(ids) == {"queued": 4, "refused": 1}
    assert members[2].phone not in [m["to"] for m in standin.messages_sent()]
    refused = rows(session, ids)[2]
    assert (refused.status, refused.error_message) == ("refused", "the number opted out")


def test_on_a_slow_line_consent_is_checked_just_before_each_send(app, session, group, line, standin,
                                                                monkeypatch):
    line.sms_rate = 1  # a chunk is half a second of the rate: one text, claimed when its slot is near
    session.commit()
    members, ids = broadcast_rows(session, group, 3)
    claim, claimed_at = batch._claim, {}

    def claim_then_third_member_stops(session_, chunk):
        claimed_at[chunk[0].id] = time.time()
        got = claim(session_, chunk)
        if chunk[0].id == ids[1]:  # the second text is claimed: now the third member texts STOP
            consent.record(session, members[2].phone, consent.OPT_OUT, "keyword")
            session.commit()
        return got

    monkeypatch.setattr(batch, "_claim", claim_then_third_member_stops)
    assert batch.deliver_batch(ids) == {"queued": 2, "refused": 1}
    sent = standin.requests(method="POST", path_suffix="Messages.json")
    assert [r.get("To") for r in sent] == [members[0].phone, members[1].phone]
    # the second text waited a second for its slot; it was claimed (consent checked) within AHEAD of it
    assert 0.9 < sent[1].time - sent[0].time < 1.2
    assert sent[1].time - claimed_at[ids[1]] <= batch.AHEAD + 0.1


def test_a_text_claimed_by_another_job_is_not_sent_twice(app, session, group, standin):
    _, ids = broadcast_rows(session, group, 3)
    session.execute(sa.update(Message).where(Message.id == ids[1]).values(status="submitting", attempts=1))
    session.commit()
    assert batch.deliver_batch(ids) == {"queued": 2, "submitting": 1}
    assert len(standin.messages_sent()) == 2 and scheduled_count() == 1  # the batch looks again later


def test_quiet_hours_defer_a_batchs_texts_together_and_they_go_as_a_batch_when_they_end(
        app, session, group, standin, monkeypatch):
    members, ids = broadcast_rows(session, group, 5)
    night = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    group.quiet_start, group.quiet_end = (night - dt.timedelta(hours=1)).time(), (night + dt.timedelta(hours=1)).time()
    members[1].timezone = "UTC"
    members[3].sms_status = "landline"
    members[4].timezone = "Pacific/Kiritimati"  # UTC+14: its quiet hours are long over
    session.commit()
    before = set(session.scalars(sa.select(Task.id)))
    assert batch.deliver_batch(ids) == {"deferred": 3, "refused": 1, "queued": 1}
    assert [m["to"] for m in standin.messages_sent()] == [members[4].phone]
    deferred = rows(session, ids)
    assert [m.status for m in deferred] == ["deferred", "deferred", "deferred", "refused", "queued"]
    later = session.scalars(sa.select(Task).where(Task.id.not_in(before))).all()
    # one batch job for the three, when quiet hours end (not a job a text)
    assert [(t.func, t.args) for t in later] == [("telline.sms.batch:deliver_batch", [ids[:3]])]
    assert abs(later[0].due_at - deferred[0].send_after) < dt.timedelta(seconds=1)
    assert deferred[0].send_after.time().replace(microsecond=0) == group.quiet_end.replace(microsecond=0)

    group.quiet_start = group.quiet_end = dt.time(0, 0)  # the morning has come
    session.commit()
    for m in deferred[:3]:
        m.send_after = dt.datetime.now(dt.UTC)
    session.commit()
    sends = []
    monkeypatch.setattr(delivery, "attempt", lambda message_id: sends.append(message_id))  # not one by one
    assert batch.deliver_batch(later[0].args[0]) == {"queued": 3}
    assert sends == [] and len(standin.messages_sent()) == 4


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


def test_when_the_line_is_busy_the_chunk_goes_to_the_next_job_unsent(app, session, group, line, standin,
                                                                    monkeypatch):
    line.sms_rate = 10
    session.commit()
    _, ids = broadcast_rows(session, group, 4)
    for _ in range(10):  # another worker has booked this second's slots
        assert delivery.limiter().acquire(line.phone_number, 10, timeout=0)
    monkeypatch.setattr(batch, "JOB_SECONDS", 0.2)  # sooner than the line's next slot
    before = set(session.scalars(sa.select(Task.id)))
    assert batch.deliver_batch(ids) == {"pending": 4}
    assert [(m.status, m.attempts) for m in rows(session, ids)] == [("pending", 0)] * 4
    assert standin.messages_sent() == []
    later = session.scalars(sa.select(Task).where(Task.id.not_in(before))).all()
    assert [t.args for t in later] == [[ids]]  # one job for all four, when the line has room
    time.sleep(0.6)
    run_jobs(app, scheduled=True)
    assert [m.status for m in rows(session, ids)] == ["queued"] * 4
    assert len(standin.messages_sent()) == 4


def test_a_status_callback_that_beats_the_batch_is_applied(app, session, group, standin, monkeypatch):
    _, ids = broadcast_rows(session, group, 3)
    record = batch._record

    def callbacks_first(session_, handed):
        for h in handed:  # Twilio's callback, in between its answer and the SID written
            record_status(session, h["twilio_sid"], "delivered", None)
        record(session_, handed)

    monkeypatch.setattr(batch, "_record", callbacks_first)
    batch.deliver_batch(ids)
    assert [m.status for m in rows(session, ids)] == ["delivered"] * 3


@pytest.mark.timing
def test_several_texts_are_in_flight_at_once(app, session, group, standin):
    """Twilio takes ~0.2 s to answer: one at a time, 20 texts would take 4 s."""
    _, ids = broadcast_rows(session, group, 20)
    standin.delay(0.2, method="POST", path_suffix="Messages.json", times=None)
    started = time.monotonic()
    assert batch.deliver_batch(ids) == {"queued": 20}
    assert time.monotonic() - started < 1.5
    assert sorted(m.twilio_sid for m in rows(session, ids)) == sorted(m["sid"] for m in standin.messages_sent())


@pytest.mark.timing
def test_a_job_sends_for_a_few_seconds_and_hands_the_rest_to_the_next(app, session, group, line, standin,
                                                                      monkeypatch):
    line.sms_rate = 10
    session.commit()
    _, ids = broadcast_rows(session, group, 25)
    monkeypatch.setattr(batch, "JOB_SECONDS", 0.5)
    before = set(session.scalars(sa.select(Task.id)))
    started = time.monotonic()
    tally = batch.deliver_batch(ids)
    assert time.monotonic() - started < 1.0  # then the worker is free for urgent work
    sent = len(standin.messages_sent())
    assert 5 <= sent <= 11 and tally == {"queued": sent, "pending": 25 - sent}
    unsent = [m.id for m in rows(session, ids) if m.status == "pending"]
    assert len(unsent) == 25 - sent and all(m.attempts == 0 for m in rows(session, unsent))
    later = session.scalars(sa.select(Task).where(Task.id.not_in(before))).all()
    assert [t.args for t in later] == [[unsent]]
    monkeypatch.setattr(batch, "JOB_SECONDS", 10)
    run_jobs(app, scheduled=True)
    assert [m.status for m in rows(session, ids)] == ["queued"] * 25
    assert sorted(m["to"] for m in standin.messages_sent()) == sorted(m.to_number for m in rows(session, ids))


def test_a_thread_that_wakes_late_books_a_new_slot_rather_than_send_late(app, session, group, line, standin,
                                                                         monkeypatch):
    line.sms_rate = 1  # slots at 0, 1.05 and 2.10 s
    session.commit()
    _, ids = broadcast_rows(session, group, 3)
    pool, stalled = send_pool.pool(), []

    def stall_once(seconds):  # the machine stalls the thread waiting for the second slot by a second
        late = 1.0 if seconds > 0.2 and not stalled else 0.0
        stalled.append(late)
        time.sleep(seconds + late)

    monkeypatch.setattr(pool, "_sleep", stall_once)
    assert batch.deliver_batch(ids) == {"queued": 3}
    sent = sorted(r.time for r in standin.requests(method="POST", path_suffix="Messages.json"))
    # sent late, the second text would have gone 50 ms before the third: two in one second
    assert min(b - a for a, b in itertools.pairwise(sent)) >= 1.0
    assert pool.rebooked == 1


@pytest.mark.parametrize("rate,unit,segments,size", [(100, "messages", 1, 50), (100, "segments", 3, 16),
                                                     (2, "messages", 1, 1), (0.5, "messages", 1, 1)])
def test_a_chunk_is_half_a_second_of_the_lines_rate(rate, unit, segments, size):
    line = Line(id=1, phone_number="+15005550006", sms_rate=rate, sms_rate_unit=unit)
    ready = [(Message(id=i, segments=segments), line) for i in range(60)]
    chunks = [len(chunk) for _, chunk in batch._chunks(ready)]
    assert chunks[0] == min(size, 60) and sum(chunks) == 60
