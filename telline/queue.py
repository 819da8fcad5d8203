"""Redis, the named RQ queues, and enqueueing that waits for the commit.

Queues, drained in this order by every worker:
- urgent:  a person is waiting (crisis replies, answers to a member's own text, moderation)
- default: ordinary jobs
- bulk:    broadcasts, reminders fan-out, housekeeping
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session

EXTENSION = "telline.queue"
QUEUE_NAMES = ("urgent", "default", "bulk")
_PENDING = "telline.jobs_after_commit"


class JobQueues:
    def __init__(self, redis_url: str, prefix: str = ""):
        # redis-py connects lazily: nothing touches the network until a job is sent.
        self.connection = Redis.from_url(redis_url, health_check_interval=30, socket_connect_timeout=5)
        self.prefix = prefix
        self.by_name = {name: Queue(prefix + name, connection=self.connection) for name in QUEUE_NAMES}

    def __getitem__(self, name: str) -> Queue:
        try:
            return self.by_name[name]
        except KeyError:
            raise ValueError(f"unknown queue {name!r}; telline has {', '.join(QUEUE_NAMES)}") from None

    def in_order(self) -> list[Queue]:
        return [self.by_name[n] for n in QUEUE_NAMES]

    def depths(self) -> dict[str, int]:
        with self.connection.pipeline() as pipe:
            for q in self.in_order():
                pipe.llen(q.key)
            return dict(zip(QUEUE_NAMES, pipe.execute()))


def init_app(app: Flask, redis_url: str, prefix: str = "") -> JobQueues:
    queues = JobQueues(redis_url, prefix)
    app.extensions[EXTENSION] = queues
    return queues


def queues() -> JobQueues:
    return current_app.extensions[EXTENSION]


def _check_ids(args: tuple, kwargs: dict) -> None:
    # Jobs take ids and re-read their rows: a row object pickled into Redis would
    # be stale by the time the job runs, and could carry a member's number into Redis.
    for value in (*args, *kwargs.values()):
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
            continue  # a batch of ids
        if not isinstance(value, (int, str, bool, type(None))):
            raise TypeError(f"job arguments must be ids or short strings, not {type(value).__name__}")


def enqueue_after_commit(session: Session, func: Callable, *args, queue: str = "default",
                         at: dt.datetime | None = None, **job_options) -> None:
    """Send `func(*args)` to RQ once `session` commits; drop it if it rolls back.

    at: run it then (RQ's scheduler), not now. job_options are RQ's own (retry, at_front, …).
    """
    _check_ids(args, {})
    target = queues()[queue]
    session.info.setdefault(_PENDING, []).append((target, func, args, at, job_options))


def enqueue_now(func: Callable, *args, queue: str = "default", **job_options):
    """Enqueue outside any transaction (CLI commands, jobs that fan out)."""
    _check_ids(args, {})
    return queues()[queue].enqueue(func, *args, **job_options)


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    # SQLAlchemy fires after_commit when a savepoint is released too (the savepoint is still
    # the session's current transaction then): only the outermost commit makes rows visible.
    if session.in_nested_transaction():
        return
    for target, func, args, at, options in session.info.pop(_PENDING, ()):
        if at is None:
            target.enqueue(func, *args, **options)
        else:
            target.enqueue_at(at, func, *args, **options)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint
        session.info.pop(_PENDING, None)
