"""Redis and the named RQ queues (work that must happen goes through telline.tasks).

Queues, drained in this order by every worker:
- urgent:  a person is waiting (crisis replies, answers to a member's own text, moderation)
- default: ordinary jobs
- bulk:    broadcasts, reminders fan-out, housekeeping
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from rq.job import Job

from telline.models import QueueName

EXTENSION = "telline.job_queues"
QUEUE_NAMES: tuple[QueueName, ...] = ("urgent", "default", "bulk")


class JobQueues:
    """`connection` is RQ's own — patient: a worker blocks on it for a job. `sending` are the same
    queues on a quick connection (telline.request_redis) that gives up within a second: a task's
    job is sent right after a commit, often by a webhook, and when Redis does not answer the
    sweeper sends it later (telline.tasks)."""

    def __init__(self, redis_url: str, prefix: str = "", quick: Redis | None = None):
        # redis-py connects lazily: nothing touches the network until a job is sent.
        self.connection = Redis.from_url(redis_url, health_check_interval=30, socket_connect_timeout=5)
        self.prefix = prefix
        self.by_name: dict[str, Queue] = {name: Queue(prefix + name, connection=self.connection)
                                          for name in QUEUE_NAMES}
        self.quick_connection = quick or self.connection
        self.sending: dict[str, Queue] = {name: Queue(prefix + name, connection=self.quick_connection)
                                          for name in QUEUE_NAMES}

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
            return dict(zip(QUEUE_NAMES, pipe.execute(), strict=True))


def init_app(app: Flask, redis_url: str, prefix: str = "", quick: Redis | None = None) -> JobQueues:
    queues = JobQueues(redis_url, prefix, quick)
    app.extensions[EXTENSION] = queues
    return queues


def queues() -> JobQueues:
    return cast(JobQueues, current_app.extensions[EXTENSION])  # put there by init_app


def check_job_args(args: Sequence[object]) -> None:
    """Jobs take ids and re-read their rows: a row object would be stale by the time the job
    runs, and could carry a member's number into Redis."""
    for value in args:
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
            continue  # a batch of ids
        if not isinstance(value, (int, str, bool, type(None))):
            raise TypeError(f"job arguments must be ids or short strings, not {type(value).__name__}")


def enqueue_now(func: Callable[..., object], *args: object, queue: QueueName = "default",
                **job_options: Any) -> Job:
    """Enqueue now, with no row behind it: for work that may be lost with Redis (tests, chores).
    Work that must happen is a task (telline.tasks.enqueue_after_commit)."""
    check_job_args(args)
    return queues()[queue].enqueue(func, *args, **job_options)
