"""Worker and cron wiring: RQ's own Worker, scheduler and CronScheduler, with an app context
per job, and what makes them safe to kill.

`telline worker` drains the queues (urgent first) and runs RQ's scheduler for delayed jobs;
`telline cron` enqueues the periodic jobs listed in PERIODIC. Both can also be started with
RQ's own CLI (`rq worker -w telline.worker.TellineWorker`).

When a worker dies (kill -9, its machine gone):
- it stops refreshing its alive key (ALIVE_TTL seconds), so the sweeper (telline.sweeper),
  run every few seconds by cron, sends the task it was running again — in well under a
  minute, where RQ alone would wait minutes for the job's heartbeat to lapse;
- its scheduler process, which RQ forks and which would otherwise live on as an orphan
  holding the scheduler lock, notices within a second and stops, releasing the lock.
Two `telline cron` enqueue each run of a periodic job once: its job id is its name and the
time it is due, enqueued with RQ's `unique=True`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import stat
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

import redis
import sqlalchemy.orm
from flask import Flask
from rq import SimpleWorker, Worker
from rq.cron import CronJob, CronScheduler
from rq.exceptions import DuplicateJobError
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.scripts import release_lock
from rq.utils import now as rq_now

from telline import job_queues, jobs, sweeper
from telline.members import retention
from telline.models import QueueName
from telline.scheduling import reminders

log = logging.getLogger(__name__)

# A worker says it is alive every ALIVE_EVERY seconds; silent for ALIVE_TTL, it counts as dead.
ALIVE_EVERY = 3
ALIVE_TTL = 10


@dataclasses.dataclass(frozen=True)
class Periodic:
    """A periodic job declared as data; `name` is its stable id in RQ's cron registry."""

    name: str
    func: Callable[..., Any]
    queue: QueueName
    cron: str  # local time of the cron process (RQ 3); a sixth field counts seconds


def every_seconds(seconds: int) -> str:
    if not 1 <= seconds <= 60 or 60 % seconds:
        raise ValueError("the sweep interval is a whole number of seconds that divides 60 (1, 2, 3, 5, … 30, 60)")
    return f"* * * * * */{seconds}" if seconds < 60 else "* * * * *"


PERIODIC = (
    Periodic("sweep-tasks", sweeper.sweep, "urgent", every_seconds(sweeper.SWEEP_SECONDS)),
    Periodic("plan-reminders", reminders.tick, "bulk", "* * * * *"),
    Periodic("replay-parked-texts", jobs.replay_parked_texts, "urgent", "* * * * *"),
    Periodic("prune-webhook-keys", jobs.prune_webhook_keys, "bulk", "17 3 * * *"),
    Periodic("prune-code-lockouts", jobs.prune_code_lockouts, "bulk", "23 3 * * *"),
    Periodic("purge-message-bodies", retention.purge_old_bodies, "bulk", "41 3 * * *"),
)

_process_app: Flask | None = None


def _app() -> Flask:
    """The app for workers started by RQ's own CLI (one per process, built on first job)."""
    global _process_app
    if _process_app is None:
        from telline import create_app
        _process_app = create_app()
    return _process_app


class _AliveSignal(threading.Thread):
    """Refreshes this worker's alive key (sweeper.alive_key) until stopped — a thread, so a
    SimpleWorker says it is alive while a long job runs in its main thread — and frees the
    scheduler locks that dead schedulers left (release_dead_scheduler_locks)."""

    def __init__(self, connection: redis.Redis, worker_name: str, queue_names: list[str]):
        super().__init__(name="telline-alive", daemon=True)
        self.connection, self.key, self.queue_names = connection, sweeper.alive_key(worker_name), queue_names
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.connection.set(self.key, os.getpid(), ex=ALIVE_TTL)
                release_dead_scheduler_locks(self.connection, self.queue_names)
            except redis.RedisError:
                pass  # Redis is down: no job runs and no sweep either; try again
            if self.stopped.wait(ALIVE_EVERY):
                return

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)
        try:
            self.connection.delete(self.key)
        except redis.RedisError:
            pass  # it expires by itself


def _scheduler_alive_key(scheduler_name: str) -> str:
    return sweeper.alive_key(f"scheduler:{scheduler_name}")


class _OrphanSafeScheduler(RQScheduler):
    """RQ's scheduler process (it moves delayed jobs and retries to their queue when due), which
    - stops, releasing its locks, once its worker is gone: RQ forks it from the worker and never
      hears from it again, so a worker killed with SIGKILL would leave it running, an orphan
      holding the scheduler lock of its queues with nobody to stop it;
    - says it is alive like a worker does: a scheduler killed outright leaves its lock for RQ's
      61 s, and with it every delayed job; release_dead_scheduler_locks frees it in seconds."""

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        self._say_alive()  # before start() forks: a new lock is never taken for a dead one's
        locks: set[str] = super().acquire_locks(auto_start)  # the queues it holds the lock of
        return locks

    def work(self) -> None:
        self._worker_pid = os.getppid()
        _close_inherited_sockets()
        super().work()

    def heartbeat(self) -> None:
        if os.getppid() != self._worker_pid:
            self.log.warning("Scheduler: its worker is gone; stopping")
            self.request_stop()
        super().heartbeat()
        self._say_alive()

    def stop(self) -> None:
        super().stop()
        self.connection.delete(_scheduler_alive_key(self.name))

    def _say_alive(self) -> None:
        self.connection.set(_scheduler_alive_key(self.name), os.getpid(), ex=ALIVE_TTL)


def _close_inherited_sockets() -> None:
    """In the scheduler process, just forked: close its copies of the worker's sockets (it makes its
    own connection). Held open here, the worker's Redis connection would outlive a worker killed in
    the middle of a BLPOP — and Redis would hand the next job to that connection, which nobody
    reads. Linux (/proc); elsewhere the sweeper still finds such a job."""
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)


def release_dead_scheduler_locks(connection: redis.Redis, queue_names: list[str]) -> list[str]:
    """Release each queue's scheduler lock whose scheduler no longer says it is alive (RQ's own
    compare-and-delete): a live worker's next maintenance starts a scheduler in its place."""
    released = []
    for name in queue_names:
        key = RQScheduler.get_locking_key(name)
        value = connection.get(key)
        owner = value.decode() if isinstance(value, bytes) else value  # the scheduler's name
        if owner and not connection.exists(_scheduler_alive_key(owner)):
            if release_lock(connection, key, owner):
                released.append(name)
                log.warning("released the scheduler lock of a dead scheduler", extra={"queue": name})
    return released


# The mixin below is only ever mixed into RQ's workers: mypy checks it as one.
if TYPE_CHECKING:
    from rq.worker import BaseWorker as _RQWorker
else:
    _RQWorker = object


class _AppContextPerJob(_RQWorker):
    app: Flask | None = None
    _alive: _AliveSignal | None = None
    stop_requested = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)

    def run(self, burst: bool = False, **options: Any) -> int:
        """work(), as `telline worker` runs it: the exit status. RQ's loop also ends — quietly —
        when something fails under it (Redis gone in the middle of a job); that must be a failure,
        so the process supervisor (systemd, compose, `telline run`) starts the worker again."""
        self.work(burst=burst, **options)
        if burst or self.stop_requested:
            return 0
        log.error("the worker stopped on an error; exiting for its supervisor to start it again")
        return 1

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        # Build the app before the first job, so that RQ's own CLI refuses bad settings at start-up
        # (telline.config), as `telline worker` does, rather than failing every job.
        self.app = self.app or _app()
        super().bootstrap(*args, **kwargs)

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        # A fresh app context per job: its own db session, torn down after the job.
        with (self.app or _app()).app_context():
            return super().perform_job(job, queue, execution)

    def register_birth(self) -> None:
        super().register_birth()
        self._alive = _AliveSignal(self.connection, self.name, self.queue_names())
        self._alive.start()

    def register_death(self) -> None:
        if self._alive is not None:
            self._alive.stop()
            self._alive = None
        super().register_death()

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO", *args: Any,
                         **kwargs: Any) -> None:
        """RQ's own (BaseWorker._start_scheduler), with the scheduler that stops with its worker."""
        self.scheduler = _OrphanSafeScheduler(
            self.queues, connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            serializer=self.serializer)
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()


class TellineWorker(_AppContextPerJob, Worker):
    """Forks a work horse per job (a crashing job cannot take the worker down)."""


class TellineSimpleWorker(_AppContextPerJob, SimpleWorker):
    """Runs jobs in-process: no process or database connection to set up per job, so many
    times the jobs per second (`telline run` and the deploy files use it)."""


def make_worker(app: Flask, queue_names: Sequence[str] | None = None, simple: bool = False,
                **rq_options: Any) -> TellineWorker | TellineSimpleWorker:
    """rq_options are RQ's own Worker settings (worker_ttl, maintenance_interval,
    job_monitoring_interval…): how soon a dead worker's jobs are found and retried."""
    jq: job_queues.JobQueues = app.extensions[job_queues.EXTENSION]
    selected = [jq[name] for name in (queue_names or job_queues.QUEUE_NAMES)]
    cls = TellineSimpleWorker if simple else TellineWorker
    # Configure the ORM once in the parent: forked work horses inherit it instead of each
    # paying for mapper configuration on its first query.
    sqlalchemy.orm.configure_mappers()
    worker = cls(selected, connection=jq.connection, **rq_options)
    worker.app = app
    return worker


class TellineCron(CronScheduler):
    """RQ's cron scheduler, safe to run twice: each run of a periodic job is enqueued under the
    job id "<name>-<time it is due>" with RQ's unique=True, so a second `telline cron` (a
    standby, or one started by mistake) finds it enqueued and adds nothing."""

    def enqueue_jobs(self) -> list[CronJob]:
        enqueue_time = rq_now()
        enqueued = []
        for job in self._cron_jobs:
            if not job.should_run():
                continue
            due = job.next_enqueue_time or enqueue_time
            job.job_options = {**job.job_options, "job_id": f"{job.name}-{due:%Y%m%dT%H%M%SZ}", "unique": True}
            try:
                job.enqueue(self.connection)
            except DuplicateJobError:
                self.log.info("periodic job %s already enqueued by another cron", job.name)
            job.set_enqueue_time(enqueue_time)
            enqueued.append(job)
        return enqueued


def make_cron(app: Flask, sweep_every: int | None = None, tick_every: int | None = None) -> CronScheduler:
    """sweep_every: seconds between sweeps, instead of sweeper.SWEEP_SECONDS; tick_every: seconds
    between reminder ticks, instead of a minute (tests, operators)."""
    jq: job_queues.JobQueues = app.extensions[job_queues.EXTENSION]
    cron = TellineCron(connection=jq.connection)
    every = {sweeper.sweep: sweep_every, reminders.tick: tick_every}
    for p in PERIODIC:
        seconds = every.get(p.func)
        schedule = every_seconds(seconds) if seconds else p.cron
        cron.register(p.func, jq[p.queue].name, cron=schedule, name=p.name)
    return cron
