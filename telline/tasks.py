"""Work that must happen, kept as rows: a text to send, a member to dial, a caller to mute.

The database is the source of truth; RQ only carries the work out.

    enqueue_after_commit(session, deliver, message.id, queue="urgent")
    session.commit()   # the Task row commits with the message; its RQ job is sent now

`enqueue_after_commit` writes a Task row in the caller's transaction and, once that
commits, sends RQ a job that names only the task's id (`run`). The job runs the task's
function with the task's arguments (ids, re-read by the function) and deletes the row.
Whatever Redis does — down at the commit, restarted empty, a worker killed mid-job — the
row stays until the work is done, and the sweeper (telline.sweeper) sends it again. A
second run is harmless: every task function is idempotent (claims, idempotency keys).

Only functions marked @durable can be tasks: the worker runs a row's function by name,
so the names it accepts are the ones the code declared.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import sqlalchemy as sa
from rq import Retry, get_current_job
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from telline import db
from telline.job_queues import queues
from telline.models import JobArg, QueueName, Task, job_id, utcnow

log = logging.getLogger(__name__)

_PENDING = "telline.tasks_after_commit"
_DURABLE: dict[str, Callable[..., Any]] = {}
# A finished job's hash is of no use (the row is gone): keep Redis small. A failed one is kept
# a week for an operator to read (`rq info`, the failed registry); the sweeper re-sends the task.
RESULT_TTL = 60
FAILURE_TTL = 7 * 24 * 3600

F = TypeVar("F", bound=Callable[..., Any])


def durable(func: F) -> F:
    """Declare `func` a task function: enqueue_after_commit takes it, and a worker runs it by name."""
    _DURABLE[_name(func)] = func
    return func


def _name(func: Callable[..., Any]) -> str:
    return f"{func.__module__}:{func.__qualname__}"


@dataclasses.dataclass(frozen=True)
class Send:
    """What RQ needs to carry out one task (read before the commit: no lazy load after it)."""
    task_id: int
    job_id: str
    func: str
    queue: QueueName
    due_at: dt.datetime
    retry: tuple[int, ...] | None
    timeout: int | None

    @classmethod
    def of(cls, task: Task) -> Send:
        return cls(task.id, task.job_id, task.func, task.queue, task.due_at,
                   tuple(task.retry) if task.retry else None, task.timeout)


def enqueue_after_commit(session: Session, func: Callable[..., Any], *args: JobArg,
                         queue: QueueName = "default", at: dt.datetime | None = None,
                         retry: Retry | None = None, timeout: int | None = None) -> Task:
    """Make `func(*args)` a task of this transaction: its row is written now, its job is sent to
    RQ when `session` commits (nothing if it rolls back). at: not before then (RQ's scheduler)."""
    _check_ids(args)
    name = _name(func)
    if name not in _DURABLE:
        raise TypeError(f"{name} is not a task function: mark it @telline.tasks.durable")
    queues()[queue]  # an unknown queue fails here, in the caller, not in a worker
    now = utcnow()
    task = Task(func=name, args=list(args), queue=queue, due_at=max(at or now, now),
                retry=_intervals(retry) if retry else None, timeout=timeout, generation=0)
    session.add(task)
    session.flush()  # its id names the job
    session.info.setdefault(_PENDING, []).append(Send.of(task))
    return task


def _check_ids(args: tuple[object, ...]) -> None:
    # Jobs take ids and re-read their rows: a row object would be stale by the time the job runs,
    # and could carry a member's number into the database's task row and Redis.
    for value in args:
        if isinstance(value, list) and all(isinstance(v, int) for v in value):
            continue  # a batch of ids
        if not isinstance(value, (int, str, bool, type(None))):
            raise TypeError(f"job arguments must be ids or short strings, not {type(value).__name__}")


def _intervals(retry: Retry) -> list[int]:
    """RQ's Retry as one interval per retry (Retry(max=3, interval=5) → [5, 5, 5])."""
    intervals = list(retry.intervals) or [0]
    return [intervals[min(i, len(intervals) - 1)] for i in range(retry.max)]


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    # SQLAlchemy fires after_commit when a savepoint is released too (the savepoint is still
    # the session's current transaction then): only the outermost commit makes rows visible.
    if session.in_nested_transaction():
        return
    pending = session.info.pop(_PENDING, None)
    if pending:
        send(pending)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint
        session.info.pop(_PENDING, None)


def send(tasks: list[Send]) -> bool:
    """Hand committed tasks to RQ in one round trip. False, and a log line, when Redis does not
    take them: the rows are committed, so the sweeper sends them once Redis answers again —
    the request or job that committed them goes on (a webhook still answers)."""
    now = utcnow()
    jq = queues()
    try:
        with jq.quick_connection.pipeline() as pipe:
            for t in tasks:
                target = jq.sending[t.queue]
                options: dict[str, Any] = dict(
                    job_id=t.job_id, description=t.func, result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
                    job_timeout=t.timeout, pipeline=pipe,
                    retry=Retry(max=len(t.retry), interval=list(t.retry)) if t.retry else None)
                if t.due_at > now:
                    target.enqueue_at(t.due_at, run, t.task_id, **options)
                else:
                    target.enqueue(run, t.task_id, **options)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("Redis did not take the jobs: they are kept for the sweeper",
                    extra={"tasks": len(tasks), "error": f"{type(exc).__name__}: {exc}"})
        return False
    return True


def run(task_id: int) -> Any:
    """The RQ job of every task: run its function, then delete its row — unless the function returned
    RQ's Retry (try again later: RQ reschedules this job). A task already done, or a job the sweeper
    has since replaced, does nothing."""
    session = db.session()
    task = session.get(Task, task_id)
    if task is None:
        return "already done"
    job = get_current_job()
    if job is not None and job.id != task.job_id:
        return "replaced by " + task.job_id
    func, args = _function(task.func), list(task.args)
    session.commit()  # hold no transaction while the work runs
    result = func(*args)
    if isinstance(result, Retry):  # not done: RQ runs this same job again after the interval
        session.commit()
        return result
    session.execute(sa.delete(Task).where(Task.id == task_id))
    session.commit()
    return result


def _function(name: str) -> Callable[..., Any]:
    module, _, _ = name.partition(":")
    importlib.import_module(module)  # registers the module's @durable functions
    try:
        return _DURABLE[name]
    except KeyError:
        raise LookupError(f"{name} is not a task function") from None


# Due longer ago than this and still not done: more than Redis's or a worker's hiccup (the sweeper
# re-sends a lost job within ~25 s), so something an operator should look at.
OVERDUE = dt.timedelta(minutes=5)


def pending(session: Session) -> int:
    """Tasks not done yet."""
    return session.scalar(sa.select(sa.func.count(Task.id))) or 0


def overdue(session: Session, now: dt.datetime) -> int:
    """Tasks due more than OVERDUE ago and not done (the metric telline_tasks_overdue)."""
    return session.scalar(sa.select(sa.func.count(Task.id)).where(Task.due_at < now - OVERDUE)) or 0


__all__ = ["durable", "enqueue_after_commit", "job_id", "overdue", "pending", "run", "send"]
