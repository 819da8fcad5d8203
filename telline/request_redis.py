"""Redis as a web request uses it (wrong-code counters, parked texts, the health probe, sending
a task's job): quick to give up.

RQ's connection (telline.job_queues) waits as long as a command takes and retries: a worker blocks
on BLPOP for minutes by design. A webhook cannot wait: a Redis that is stopped or lost on the
network would hold the caller until Twilio gives up and plays "an application error". Here
connecting and each command give up after TIMEOUT seconds, without retrying, and the request
goes on without Redis (each caller says what it does instead).
"""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

EXTENSION = "telline.request_redis"
TIMEOUT = 1.0  # seconds


def init_app(app: Flask, url: str) -> None:
    # redis-py connects lazily: nothing touches the network until the first command.
    app.extensions[EXTENSION] = Redis.from_url(url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT,
                                               retry=Retry(NoBackoff(), 0))


def connection() -> Redis:
    return connection_of(current_app)


def connection_of(app: Flask) -> Redis:
    client: Redis = app.extensions[EXTENSION]
    return client
