"""Reminders exactly once under faults, tested by killing: a worker killed (kill -9, its work horse
and scheduler with it) in the middle of the fan-out, the cron killed, Redis crashed and restarted
empty. Every opted-in member gets each reminder exactly once — the stand-in's own record says so —
none lost, none twice, none before its due time.

The real processes of test_reliability (its fixtures): `telline worker`s, a `telline cron` that
ticks and sweeps every second (`--tick-every 1 --sweep-every 1`), the Twilio stand-in in its own
process, a redis-server of this module's own. Six groups, one line and one series each, 25 members
each; each series' 15-minute reminder falls due at its own second, over the first few seconds, so
a kill finds reminders at every stage: planned, claimed, fanned out, half sent.

A kill while texts are in flight leaves rows "submitting": they wait for their claim to lapse
(delivery.CLAIM_TIMEOUT, 30 s) before they are looked up at Twilio, which bounds those tests' time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections import Counter

import pytest
import sqlalchemy as sa
from rq.job import Job

from telline import db
from telline.models import ConsentEvent, Group, Line, Member, Membership, Message, Reminder, Task, job_id
from telline.scheduling import reminders
from telline.scheduling.series import create_series
from telline.sms import consent
from tests.sms import test_reliability as rel
from tests.sms.test_reliability import MESSAGES, handed_over, stuck_request, wait_for

# test_reliability's fixtures: its processes, its stand-in, a redis-server of this module's own.
fresh_database_url, committed_app, workers = rel.fresh_database_url, rel.committed_app, rel.workers
standin_process, remote_standin = rel.standin_process, rel.remote_standin
private_redis, redis_url = rel.private_redis, rel.redis_url

GROUPS, MEMBERS = 6, 25
TEXTS = GROUPS * MEMBERS
STAGGER = 1.0  # seconds between two series' due times
RATE = 10  # texts/s per line: 2.5 s of sending each


def schedule(session, first_due_in: float = 3.0) -> dict[str, dt.datetime]:
    """GROUPS groups (no quiet hours), a line and MEMBERS opted-in members each, and a weekly series
    each whose only reminder (15 minutes before) falls due `first_due_in` s from now, then one every
    STAGGER s. Returns each member's number → their reminder's due time."""
    now = dt.datetime.now(dt.UTC)
    due: dict[str, dt.datetime] = {}
    for g in range(GROUPS):
        group = Group(name=f"Group {g}", timezone="UTC", text_code=f"REM{g}",
                      quiet_start=dt.time(0, 0), quiet_end=dt.time(0, 0))
        session.add(group)
        session.flush()
        line = Line(group_id=group.id, phone_number=f"+1500555{g:04d}", sms_rate=RATE, sms_rate_unit="messages")
        session.add(line)
        phones = [f"+4479{g:02d}{i:06d}" for i in range(MEMBERS)]
        session.execute(sa.insert(Member), [{"phone": p, "display_name": ""} for p in phones])
        ids = dict(session.execute(sa.select(Member.phone, Member.id).where(Member.phone.in_(phones))).all())
        session.execute(sa.insert(Membership), [{"member_id": ids[p], "group_id": group.id, "status": "active"}
                                                for p in phones])
        session.execute(sa.insert(ConsentEvent), [{"phone": p, "channel": "sms", "action": consent.OPT_IN,
                                                   "source": "import", "detail": ""} for p in phones])
        at = (now + dt.timedelta(seconds=first_due_in + g * STAGGER)).replace(microsecond=0)
        start = at + dt.timedelta(minutes=15)
        create_series(session, group=group, line=line, title=f"Series {g}", reminder_offsets=[15],
                      first_start_local=start.replace(tzinfo=None), rrule="FREQ=WEEKLY", now=now)
        due.update(dict.fromkeys(phones, at))
    session.commit()
    return due


def states(session) -> Counter[str]:
    """Of the reminders due within the test (each series' later meetings' are a week on)."""
    session.rollback()
    try:
        return Counter(session.scalars(sa.select(Reminder.state).where(
            Reminder.due_at < dt.datetime.now(dt.UTC) + dt.timedelta(days=1))))
    finally:
        session.rollback()


def assert_each_member_reminded_once(session, standin, due: dict[str, dt.datetime]) -> None:
    created = standin.messages_sent()
    per_number = Counter(m["to"] for m in created)
    assert [to for to, n in per_number.items() if n > 1] == []
    assert set(per_number) == set(due)  # none lost
    assert len(standin.requests("POST", MESSAGES)) == TEXTS  # not one request more
    session.rollback()
    rows = session.execute(sa.select(Message.to_number, Message.twilio_sid, Message.idempotency_key)
                           .where(Message.kind == "reminder")).all()
    by_sid = {m["sid"]: m["to"] for m in created}
    assert sorted(by_sid.get(r.twilio_sid) for r in rows) == sorted(due)  # each row, its own message
    assert len({r.idempotency_key for r in rows}) == TEXTS
    early = [r for r in standin.requests("POST", MESSAGES)
             if dt.datetime.fromtimestamp(r.time, dt.UTC) < due[r.get("To")]]
    assert early == []  # none before its due time
    assert states(session) == Counter({"sent": GROUPS})
    wait_for(lambda: session.rollback() or session.scalar(sa.select(sa.func.count(Task.id))) == 0, 30,
             "every task done")


SQLITE = pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
BOTH = pytest.mark.parametrize("fresh_database_url", [
    "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)


@contextlib.contextmanager
def fan_out_held(session, reminder_id: int):
    """Hold the fan-out of this reminder in the middle: on PostgreSQL a lock on its row, so the fan-out
    reads, writes its texts and tasks, and waits at its last statement (the row to "sent"), its
    transaction open; on SQLite the write lock (BEGIN IMMEDIATE), so it waits at its first."""
    engine = db.database().engine
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("SELECT 1")  # its transaction begins IMMEDIATE (telline.db): the write lock
        else:
            conn.execute(sa.select(Reminder.id).where(Reminder.id == reminder_id).with_for_update())
        try:
            yield
        finally:
            conn.rollback()


@pytest.mark.slow
@BOTH
def test_a_worker_killed_in_the_middle_of_a_fan_out_loses_and_duplicates_no_reminder(
        committed_app, workers, remote_standin, redis_conn):
    """The fan-out's job is killed with its worker while its transaction is open: nothing of it is
    written, its task is sent again by the sweeper, which the next worker runs to the end."""
    session = db.session()
    due = schedule(session, first_due_in=0.5)
    # The cron's tick, here: the first reminder claimed, its fan-out task queued for a worker.
    wait_for(lambda: reminders.tick()["claimed"], 10, "a reminder claimed")
    reminder_id = session.scalar(sa.select(Reminder.id).where(Reminder.state == "sending").order_by(Reminder.id))
    fan_outs = [job_id(t.id, t.generation) for t in session.scalars(
        sa.select(Task).where(Task.func.endswith(":fan_out")))]
    session.rollback()
    with fan_out_held(session, reminder_id):  # the test's own session must not read meanwhile (SQLite)
        worker = workers.start()
        running = wait_for(lambda: [j for j in fan_outs if redis_conn.hget(Job.key_for(j), "status") == b"started"],
                           30, "a fan-out running", workers)
        time.sleep(0.5)  # at its statement
        workers.kill_9(worker)
    assert handed_over(session) == 0 and states(session)["sent"] == 0
    assert session.scalar(sa.select(sa.func.count(Message.id)).where(Message.kind == "reminder")) == 0
    workers._start("cron", "--sweep-every", "1", "--tick-every", "1")
    workers.start()
    workers.start()
    wait_for(lambda: handed_over(session) == TEXTS, 60, f"all {TEXTS} reminders handed over", workers, interval=0.2)
    assert_each_member_reminded_once(session, remote_standin, due)
    print(f"\nkilled while fan-out job(s) {running} ran")


@pytest.mark.slow
@SQLITE
def test_a_worker_killed_with_reminders_half_sent_loses_and_duplicates_none(committed_app, workers, remote_standin):
    session = db.session()
    due = schedule(session)
    workers._start("cron", "--sweep-every", "1", "--tick-every", "1")
    first = [workers.start(), workers.start()]
    wait_for(lambda: handed_over(session) >= 20, 30, "the first reminders handed to Twilio", workers)
    # Kill at the worst moment: Twilio has created a message and its worker has not heard back yet.
    remote_standin.delay(30, method="POST", path_suffix=MESSAGES)
    wait_for(lambda: stuck_request(remote_standin), 20, "a send stuck in flight", workers)
    at_kill = states(session)
    workers.kill_9(*first)
    sent_before = handed_over(session)
    assert sent_before < TEXTS and at_kill["sent"] < GROUPS, "all was done before the kill: nothing was tested"
    for _ in first:
        workers.start()
    wait_for(lambda: handed_over(session) == TEXTS, 60, f"all {TEXTS} reminders handed over", workers, interval=0.2)
    assert_each_member_reminded_once(session, remote_standin, due)
    print(f"\nkilled with reminders {dict(at_kill)} and {sent_before} texts handed over")


@pytest.mark.slow
@SQLITE
def test_the_cron_killed_before_some_reminders_are_due_loses_and_duplicates_none(
        committed_app, workers, remote_standin):
    session = db.session()
    due = schedule(session)
    cron = workers._start("cron", "--sweep-every", "1", "--tick-every", "1")
    workers.start()
    workers.start()
    wait_for(lambda: states(session)["sending"] + states(session)["sent"] >= 1, 30, "a reminder claimed", workers)
    workers.kill_9(cron)
    at_kill = states(session)
    assert at_kill["pending"] >= 2, at_kill  # reminders still to claim, by a cron that is gone
    time.sleep(3)  # their due times pass with no cron: no tick, no sweep
    workers._start("cron", "--sweep-every", "1", "--tick-every", "1")
    wait_for(lambda: handed_over(session) == TEXTS, 60, f"all {TEXTS} reminders handed over", workers, interval=0.2)
    assert_each_member_reminded_once(session, remote_standin, due)
    print(f"\ncron killed with reminders {dict(at_kill)}")


@pytest.mark.slow
@SQLITE
def test_redis_crashed_and_restarted_empty_mid_fan_out_loses_and_duplicates_no_reminder(
        committed_app, workers, remote_standin, private_redis):
    session = db.session()
    due = schedule(session)
    workers._start("cron", "--sweep-every", "1", "--tick-every", "1")
    workers.start()
    workers.start()
    wait_for(lambda: handed_over(session) >= 20, 30, "the first reminders handed to Twilio", workers)
    private_redis.crash()
    at_crash, sent_before = states(session), handed_over(session)
    assert sent_before < TEXTS and at_crash["sent"] < GROUPS, "all was done before the crash: nothing was tested"
    time.sleep(1)
    private_redis.start_empty()
    exits: list[int] = []
    wait_for(lambda: exits.extend(workers.revive()) or handed_over(session) == TEXTS, 60,
             f"all {TEXTS} reminders handed over", workers, interval=0.2)
    assert_each_member_reminded_once(session, remote_standin, due)
    print(f"\nRedis crashed with reminders {dict(at_crash)} and {sent_before} texts handed over; "
          f"{len(exits)} processes restarted")
