"""Worker and cron wiring: RQ's own Worker and CronScheduler, with an app context per job.

`telline worker` drains the queues (urgent first) and runs RQ's scheduler for
enqueue_at/enqueue_in; `telline cron` enqueues the periodic jobs listed in
PERIODIC. Both can also be started with RQ's own CLI
(`rq worker -w telline.worker.TellineWorker`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import sqlalchemy.orm
from flask import Flask
from rq import SimpleWorker, Worker
from rq.cron import CronScheduler

from telline import jobs
from telline import queue as job_queue


@dataclasses.dataclass(frozen=True)
class Periodic:
    """A periodic job declared as data; `name` is its stable id in RQ's cron registry."""

    name: str
    func: Callable
    queue: str
    cron: str  # local time of the cron process (RQ 3)


PERIODIC = (
    Periodic("prune-webhook-keys", jobs.prune_webhook_keys, "bulk", "17 3 * * *"),
    Periodic("prune-code-lockouts", jobs.prune_code_lockouts, "bulk", "23 3 * * *"),
)

_process_app: Flask | None = None


def _app() -> Flask:
    """The app for workers started by RQ's own CLI (one per process, built on first job)."""
    global _process_app
    if _process_app is None:
        from telline import create_app
        _process_app = create_app()
    return _process_app


class _AppContextPerJob:
    app: Flask | None = None

    def bootstrap(self, *args, **kwargs):
        # Build the app before the first job, so that RQ's own CLI refuses bad settings at start-up
        # (telline.config), as `telline worker` does, rather than failing every job.
        self.app = self.app or _app()
        return super().bootstrap(*args, **kwargs)

    def perform_job(self, job, queue, execution):
        # A fresh app context per job: its own db session, torn down after the job.
        with (self.app or _app()).app_context():
            return super().perform_job(job, queue, execution)


class TellineWorker(_AppContextPerJob, Worker):
    """Forks a work horse per job (a crashing job cannot take the worker down)."""


class TellineSimpleWorker(_AppContextPerJob, SimpleWorker):
    """Runs jobs in-process: no process or database connection to set up per job, so many
    times the jobs per second (`telline run` and the deploy files use it)."""


def make_worker(app: Flask, queue_names=None, simple: bool = False, **rq_options):
    """rq_options are RQ's own Worker settings (worker_ttl, maintenance_interval,
    job_monitoring_interval…): how soon a dead worker's jobs are found and retried."""
    jq: job_queue.JobQueues = app.extensions[job_queue.EXTENSION]
    selected = [jq[name] for name in (queue_names or job_queue.QUEUE_NAMES)]
    cls = TellineSimpleWorker if simple else TellineWorker
    # Configure the ORM once in the parent: forked work horses inherit it instead of each
    # paying for mapper configuration on its first query.
    sqlalchemy.orm.configure_mappers()
    worker = cls(selected, connection=jq.connection, **rq_options)
    worker.app = app
    return worker


def make_cron(app: Flask) -> CronScheduler:
    jq: job_queue.JobQueues = app.extensions[job_queue.EXTENSION]
    cron = CronScheduler(connection=jq.connection)
    for p in PERIODIC:
        cron.register(p.func, jq[p.queue].name, cron=p.cron, name=p.name)
    return cron
