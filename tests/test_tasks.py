"""Work that must happen is a row first: nothing is lost when Redis is down at the commit, restarts
empty, or a worker dies; the sweeper sends the job again, and nothing is done twice.

These run in the rolled-back `app` (both databases) against a private redis-server of the test's
own, which a test stops and starts again — empty, as a server without persistence comes back.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from rq.job import Job, JobStatus

from telline import localredis, sweeper, tasks
from telline.job_queues import queues
from telline.models import InboxItem, Line, Message, Task, utcnow
from telline.sms.outbound import send_text
from telline.texts import t
from telline.worker import ALIVE_TTL, make_cron, make_worker
from tests import sample_jobs
from tests.redis_server import RestartableRedis
from tests.signing import post_signed
from tests.sms.conftest import LINE, PUBLIC_URL, add_member, new_group, run_jobs, texts_to

MEMBER = "+447911123456"


@pytest.fixture
def private_redis():
    if localredis.redis_server_binary() is None:
        pytest.skip("needs a redis-server binary to stop and start")
    server = RestartableRedis()
    yield server
    server.stop()


@pytest.fixture
def settings_overrides(standin, private_redis):
    return {"twilio_api_base_url": standin.url, "public_url": PUBLIC_URL, "redis_url": private_redis.url}


@pytest.fixture
def group(session):
    return new_group(session, crisis_resource="call 116 123")


@pytest.fixture
def line(session, group):
    return session.scalar(sa.select(Line).where(Line.group_id == group.id))


def jobs_in_redis() -> int:
    return sum(q.count for q in queues().in_order())


def sweep_now() -> int:
    """A sweep as cron runs it, without waiting out the grace period in real time."""
    return sweeper.sweep(grace_seconds=0)


def test_a_text_received_while_redis_is_down_is_answered_once_redis_is_back(app, client, session, group,
                                                                            standin, private_redis):
    add_member(session, group, MEMBER)
    private_redis.stop()
    form = {"MessageSid": "SM" + "7" * 32, "AccountSid": "AC" + "1" * 32, "From": MEMBER, "To": LINE,
            "Body": "I can't sleep, everything feels too much", "NumMedia": "0"}
    first = post_signed(client, "/twilio/sms", form)
    assert first.status_code == 200 and first.content_type.startswith("text/xml")
    assert first.get_data(as_text=True).endswith("<Response />")
    retry = post_signed(client, "/twilio/sms", form)  # Twilio tries again: a duplicate, still answered
    assert retry.status_code == 200
    # The text and its reply are kept: the inbox item for a coordinator, the reply as a row and a task.
    assert session.scalar(sa.select(sa.func.count(InboxItem.id))) == 1
    [reply] = session.scalars(sa.select(Message).where(Message.direction == "outbound")).all()
    assert reply.status == "pending" and tasks.pending(session) == 1

    private_redis.start_empty()
    assert jobs_in_redis() == 0  # the server came back empty: the job never reached it
    assert sweep_now() == 1
    run_jobs(app)
    crisis = t("sms.crisis", "en", resource="call 116 123")
    assert texts_to(standin, MEMBER) == [t("sms.inbox_ack", "en", crisis=crisis)]
    assert tasks.pending(session) == 0
    assert sweep_now() == 0 and texts_to(standin, MEMBER)[1:] == []  # nothing is sent twice


def test_jobs_lost_with_a_redis_restart_are_sent_again_and_each_text_goes_once(app, session, group, line,
                                                                              standin, private_redis):
    numbers = [f"+4479111234{i:02d}" for i in range(5)]
    for i, number in enumerate(numbers):
        send_text(session, line=line, to=number, body="Tonight's meeting is on.", idempotency_key=f"lost:{i}")
    session.commit()
    assert jobs_in_redis() == 5
    private_redis.stop()
    private_redis.start_empty()  # no persistence: every job is gone
    run_jobs(app)
    assert standin.messages_sent() == []
    assert sweep_now() == 5
    run_jobs(app)
    assert sorted(m["to"] for m in standin.messages_sent()) == numbers
    assert sweep_now() == 0 and tasks.pending(session) == 0


def test_a_task_waiting_in_its_queue_or_for_its_time_is_left_alone(app, session, group, line, standin):
    send_text(session, line=line, to=MEMBER, body="Now.", idempotency_key="now")
    send_text(session, line=line, to=MEMBER, body="Later.", idempotency_key="later",
              send_at=utcnow() + dt.timedelta(hours=2))
    session.commit()
    assert sweep_now() == 0  # one queued, one scheduled: both still in Redis
    assert jobs_in_redis() == 1


def test_a_task_whose_job_failed_for_good_is_sent_again(app, session, redis_conn):
    tasks.enqueue_after_commit(session, sample_jobs.flaky_task, "flaky-task", 3)  # fails twice, no retries
    session.commit()
    make_worker(app, simple=True).work(burst=True)
    assert tasks.pending(session) == 1  # its job failed: the row stays
    [task] = session.scalars(sa.select(Task)).all()
    assert Job.fetch(task.job_id, connection=queues().connection).get_status() == JobStatus.FAILED
    assert sweep_now() == 1
    make_worker(app, simple=True).work(burst=True)
    assert sweep_now() == 1  # failed again: a third try
    make_worker(app, simple=True).work(burst=True)
    assert tasks.pending(session) == 0
    assert int(queues().connection.get("flaky-task")) == 3


def test_a_task_that_keeps_failing_is_tried_less_often_but_never_dropped(app, session):
    tasks.enqueue_after_commit(session, sample_jobs.flaky_task, "hopeless-task", 99)
    session.commit()
    for _ in range(sweeper.PATIENCE + 1):
        make_worker(app, simple=True).work(burst=True)
        assert sweep_now() == 1
    session.expire_all()
    [task] = session.scalars(sa.select(Task)).all()
    assert task.generation == sweeper.PATIENCE + 1
    assert task.due_at > utcnow() + dt.timedelta(minutes=1)  # waits before its next try
    assert sweep_now() == 0


def text_started_by(session, line, worker_name: str) -> None:
    """A text whose job a worker has taken from its queue and is running (as RQ records it)."""
    send_text(session, line=line, to=MEMBER, body="Hello.", idempotency_key=f"started-by:{worker_name}")
    session.commit()
    [task] = session.scalars(sa.select(Task)).all()
    job = Job.fetch(task.job_id, connection=queues().connection)
    job.worker_name = worker_name
    job.set_status(JobStatus.STARTED)
    job.save()
    queues()["default"].remove(job.id)


def test_a_job_started_by_a_worker_that_died_is_sent_again(app, session, group, line, standin):
    text_started_by(session, line, "worker-that-died")  # its alive key lapsed: killed mid-job
    assert sweep_now() == 1
    run_jobs(app)
    assert texts_to(standin, MEMBER) == ["Hello."]


def test_a_job_started_by_a_live_worker_is_left_alone(app, session, group, line):
    text_started_by(session, line, "busy-worker")
    queues().connection.set(sweeper.alive_key("busy-worker"), 1, ex=ALIVE_TTL)
    assert sweep_now() == 0


def test_a_job_taken_from_its_queue_and_never_run_is_sent_again(app, session, group, line, standin):
    """A worker killed in BLPOP whose forked scheduler still holds its socket: Redis hands the next
    job to a connection nobody reads. The job's hash says "queued"; no queue holds it."""
    send_text(session, line=line, to=MEMBER, body="Hello.", idempotency_key="limbo")
    session.commit()
    [task] = session.scalars(sa.select(Task)).all()
    assert queues().connection.lpop(queues()["default"].key) == task.job_id.encode()  # into nowhere
    assert Job.fetch(task.job_id, connection=queues().connection).get_status() == JobStatus.QUEUED
    assert sweep_now() == 1
    run_jobs(app)
    assert texts_to(standin, MEMBER) == ["Hello."]


def test_a_job_of_an_older_generation_does_nothing(app, session, group, line, standin, private_redis):
    send_text(session, line=line, to=MEMBER, body="Once only.", idempotency_key="generations")
    session.commit()
    [task] = session.scalars(sa.select(Task)).all()
    original = Job.fetch(task.job_id, connection=queues().connection)
    queues()["default"].remove(original.id)  # the original goes astray (a slow failover, say)…
    original.set_status(JobStatus.FAILED)
    original.save()
    assert sweep_now() == 1  # …so the sweeper sends generation 1
    queues()["default"].enqueue_job(original, at_front=True)  # and then the original turns up after all
    make_worker(app, simple=True).work(burst=True)
    assert texts_to(standin, MEMBER) == ["Once only."]
    assert original.get_status(refresh=True) == JobStatus.FINISHED and original.return_value().startswith("replaced")


def test_two_sweeps_at_once_send_a_lost_task_once(app, session, group, line, private_redis):
    send_text(session, line=line, to=MEMBER, body="Hello.", idempotency_key="two-sweeps")
    session.commit()
    private_redis.stop()
    private_redis.start_empty()
    now = utcnow()
    seen_by_one, seen_by_other = sweeper.find_lost(session, now), sweeper.find_lost(session, now)
    assert seen_by_one == seen_by_other == [(session.scalar(sa.select(Task.id)), 0)]
    assert len(sweeper.resend(session, seen_by_one)) == 1
    assert sweeper.resend(session, seen_by_other) == []  # its compare-and-set finds generation 1
    assert jobs_in_redis() == 1


def test_two_crons_enqueue_each_run_of_a_periodic_job_once(app):
    due = utcnow().replace(microsecond=0) - dt.timedelta(seconds=1)
    first, second = make_cron(app), make_cron(app)
    for cron in (first, second):
        for job in cron.get_jobs():
            job.next_enqueue_time = due  # both processes reach the same tick
        assert len(cron.enqueue_jobs()) == len(cron.get_jobs())
    names = sorted(job.id.rsplit("-", 1)[0] for q in queues().in_order() for job in q.get_jobs())
    assert names == sorted(job.name for job in first.get_jobs())  # each once, not twice
