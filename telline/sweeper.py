"""The sweeper: every task that is due and whose RQ job is gone gets a new job.

A job goes missing when Redis was down as its task committed, when Redis restarted empty,
when a worker died in the middle of it (its worker stops saying it is alive: see
telline.worker), or when RQ gave up on it (failed after its retries, stopped, cancelled).
The task row is still there — it is deleted only once its work is done — so the sweeper
sends it again under a new job id: the next generation (see Task.generation). It does not
judge the work: the task's function is idempotent (claims, idempotency keys) and decides
what is left to do.

`telline cron` runs it every few seconds (SWEEP_SECONDS) on the urgent queue. Two sweeps at
once are harmless: a task moves to its next generation by compare-and-set, so exactly one
of them sends it.
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from rq.job import Job, JobStatus
from sqlalchemy.orm import Session

from telline import db, tasks
from telline.job_queues import queues
from telline.models import Task, utcnow

log = logging.getLogger(__name__)

SWEEP_SECONDS = 15
# A task younger than this may simply not have reached Redis yet (sent right after its commit).
GRACE = dt.timedelta(seconds=10)
BATCH = 2000  # tasks looked at per sweep, oldest due first
# Sent again this many times without getting done: something is wrong with it, not with Redis.
# It is still never dropped; it waits longer between tries and is logged as an error.
PATIENCE = 3
LONGEST_WAIT = dt.timedelta(hours=1)

WAITING = {JobStatus.QUEUED.value, JobStatus.SCHEDULED.value, JobStatus.DEFERRED.value}


def alive_key(worker_name: str) -> str:
    """Set by every telline worker every few seconds while it lives (telline.worker)."""
    return f"telline:alive:{worker_name}"


def sweep(grace_seconds: float = GRACE.total_seconds()) -> int:
    """Send every due task whose job is missing again; returns how many were sent.
    grace_seconds: how long after its due time a task's job may still be on its way to Redis."""
    session = db.session()
    sent = resend(session, find_lost(session, utcnow() - dt.timedelta(seconds=grace_seconds)))
    if sent:
        log.warning("tasks whose job was lost sent again", extra={
            "count": len(sent), "funcs": sorted({task.func for task in sent})})
    return len(sent)


def find_lost(session: Session, due_before: dt.datetime) -> list[tuple[int, int]]:
    """(id, generation) of the tasks due before then whose job is gone."""
    due = [(task_id, generation) for task_id, generation in session.execute(
        sa.select(Task.id, Task.generation).where(Task.due_at <= due_before).order_by(Task.due_at).limit(BATCH))]
    session.rollback()  # hold nothing while Redis answers
    return [row for row, missing in zip(due, _missing([tasks.job_id(*row) for row in due]), strict=True) if missing]


def resend(session: Session, lost: list[tuple[int, int]]) -> list[Task]:
    """Move each task to its next generation — only if it is still at the one that was found lost
    (compare-and-set: of two sweeps, one sends it) — and send the new job."""
    if not lost:
        return []
    now = utcnow()
    sent = list(session.scalars(
        sa.update(Task)
        .where(sa.tuple_(Task.id, Task.generation).in_(lost))
        .values(generation=Task.generation + 1)
        .returning(Task)
        .execution_options(synchronize_session=False)))
    for task in sent:
        if task.generation > PATIENCE:  # not Redis's fault: wait longer each time
            task.due_at = now + min(dt.timedelta(minutes=2 ** (task.generation - PATIENCE)), LONGEST_WAIT)
            log.error("task keeps failing; trying again later", extra={
                "task_id": task.id, "func": task.func, "generation": task.generation,
                "next_try": task.due_at.isoformat()})
    session.commit()
    tasks.send([tasks.Send.of(task) for task in sent])
    return sent


def _missing(job_ids: list[str]) -> list[bool]:
    """For each job: is it gone — not in Redis; over (failed, stopped, cancelled, or finished
    without its task being done); started by a worker that is no longer alive; or "queued" but in
    no queue? That last one is a job a worker took from its queue and never ran: RQ hands it over
    with BLPOP, and when the worker has just been killed, a child it forked (its scheduler) may
    still hold its connection open, so Redis gives the job to a socket nobody reads."""
    jq = queues()
    connection = jq.connection
    # The queues first: a job taken from one after this is already marked started when it is read.
    keys = [key for q in jq.in_order() for key in (q.key, q.intermediate_queue.key)]
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.lrange(key, 0, -1)
        in_a_queue = {job_id for ids in pipe.execute() for job_id in ids}
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(Job.key_for(job_id), "status", "worker_name")
        states = [((status or b"").decode(), (worker or b"").decode()) for status, worker in pipe.execute()]
    started_by = [worker for status, worker in states if status == JobStatus.STARTED.value]
    with connection.pipeline(transaction=False) as pipe:
        for worker in started_by:
            pipe.exists(alive_key(worker))
        alive = dict(zip(started_by, pipe.execute(), strict=True))
    out = []
    for job_id, (status, worker) in zip(job_ids, states, strict=True):
        if status == JobStatus.STARTED.value:
            out.append(not alive.get(worker))
        elif status == JobStatus.QUEUED.value:
            out.append(job_id.encode() not in in_a_queue)
        else:
            out.append(status not in WAITING)
    return out
