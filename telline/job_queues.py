"""Redis and the named RQ queues (work that must happen goes through telline.tasks).

Queues, drained in this order by every worker:
- urgent:  a person is waiting (crisis replies, answers to a member's own text, moderation)
- default: ordinary jobs
- bulk:    broadcasts, reminders fan-out, housekeeping
"""

from __future__ import annotations

from typing import cast

from flask import Flask, current_app
from redis import Redis
from rq import Queue

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
