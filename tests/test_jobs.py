"""Jobs: sent only after commit, run by real workers on real Redis, retried per their policy."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from rq import Retry
from rq.job import Job, JobStatus

from telline import create_app, db, migrate
from telline.job_queues import queues
from telline.models import Group
from telline.tasks import enqueue_after_commit
from telline.worker import PERIODIC, make_cron, make_worker
from tests import sample_jobs
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[1]


def queued_ids(name="default"):
    return queues()[name].get_job_ids()


def test_nothing_is_enqueued_before_the_commit(session):
    session.add(Group(name="g"))
    enqueue_after_commit(session, sample_jobs.rename_group, 1, "x")
    assert queued_ids() == []
    session.commit()
    assert len(queued_ids()) == 1


def test_a_rolled_back_transaction_enqueues_nothing(session):
    session.add(Group(name="g"))
    enqueue_after_commit(session, sample_jobs.rename_group, 1, "x")
    session.rollback()
    assert queued_ids() == []
    session.add(Group(name="h"))
    session.commit()  # a later commit must not resurrect the dropped job
    assert queued_ids() == []


def test_a_savepoint_rollback_keeps_the_outer_jobs(session):
    enqueue_after_commit(session, sample_jobs.rename_group, 1, "x")
    with pytest.raises(RuntimeError):
        with session.begin_nested():
            raise RuntimeError("inner failure")
    session.commit()
    assert len(queued_ids()) == 1


def test_jobs_take_ids_not_rows(session):
    with pytest.raises(TypeError, match="ids"):
        enqueue_after_commit(session, sample_jobs.rename_group, Group(name="g"), "x")


def test_unknown_queue_is_refused(session):
    with pytest.raises(ValueError, match="unknown queue"):
        enqueue_after_commit(session, sample_jobs.rename_group, 1, "x", queue="fast")


def test_a_job_runs_in_a_worker_with_its_own_app_context(app, session):
    group = Group(name="before")
    session.add(group)
    session.commit()
    enqueue_after_commit(session, sample_jobs.rename_group, group.id, "after", queue="urgent")
    session.commit()
    worker = make_worker(app, simple=True)
    assert worker.work(burst=True)
    session.expire_all()
    assert session.get(Group, group.id).name == "after"


def test_urgent_jobs_run_first(app, redis_conn):
    queues()["bulk"].enqueue(sample_jobs.append_to_list, "order", "bulk")
    queues()["default"].enqueue(sample_jobs.append_to_list, "order", "default")
    queues()["urgent"].enqueue(sample_jobs.append_to_list, "order", "urgent")
    make_worker(app, simple=True).work(burst=True)
    assert [x.decode() for x in redis_conn.lrange("order", 0, -1)] == ["urgent", "default", "bulk"]


def test_a_failing_job_is_retried_per_its_policy(app, redis_conn):
    job = queues()["default"].enqueue(sample_jobs.fail_until, "flaky", 3, retry=Retry(max=2))
    make_worker(app, simple=True).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED
    assert int(redis_conn.get("flaky")) == 3  # two failures, then success on the last allowed try


def test_a_job_that_keeps_failing_ends_failed_after_its_retries(app, redis_conn):
    job = queues()["default"].enqueue(sample_jobs.fail_until, "hopeless", 99, retry=Retry(max=2))
    make_worker(app, simple=True).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED
    assert int(redis_conn.get("hopeless")) == 3


def test_periodic_jobs_are_declared_with_stable_names(app):
    cron = make_cron(app)
    assert [j.name for j in cron.get_jobs()] == [p.name for p in PERIODIC]
    assert all(j.queue_name in {q.name for q in queues().in_order()} for j in cron.get_jobs())


def test_webhook_keys_are_kept_a_week(session):
    import datetime as dt

    from telline import jobs
    from telline.models import WebhookKey, utcnow
    for days in (8, 6):
        session.add(WebhookKey(key=f"sms:SM{days}", received_at=utcnow() - dt.timedelta(days=days)))
    session.flush()
    assert jobs.prune_webhook_keys() == 1
    assert session.scalars(sa.select(WebhookKey.key)).all() == ["sms:SM6"]


@pytest.mark.timing
@pytest.mark.slow
def test_telline_worker_command_runs_a_job_in_a_forked_work_horse(tmp_path, redis_url, redis_conn):
    """The real `telline worker --burst` process, a committed SQLite file, real Redis."""
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    migrate.upgrade(url)
    app = create_app(make_settings(url, redis_url))
    with app.app_context():
        session = db.session()
        group = Group(name="before")
        session.add(group)
        session.commit()
        enqueue_after_commit(session, sample_jobs.rename_group, group.id, "renamed by a worker")
        session.add(Group(name="another"))
        session.commit()
        job_id = queued_ids()[0]
    env = dict(os.environ, TELLINE_DATABASE_URL=url, TELLINE_REDIS_URL=redis_url,
               TWILIO_AUTH_TOKEN="x", TELLINE_LOG_FORMAT="json", PYTHONPATH=str(REPO))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "telline", "worker", "--burst"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    with app.app_context():
        assert db.session().scalar(sa.select(Group.name).where(Group.id == group.id)) == "renamed by a worker"
        assert Job.fetch(job_id, connection=queues().connection).get_status() == JobStatus.FINISHED
    # The job's own log line carries its id.
    assert any(f'"job_id": "{job_id}"' in line and "renamed group" in line for line in done.stderr.splitlines())
    app.extensions["telline.db"].dispose()


def test_a_released_savepoint_is_not_the_commit(session):
    """Savepoints inside the transaction (send_text uses one) must not send jobs early."""
    enqueue_after_commit(session, sample_jobs.rename_group, 1, "x")
    with session.begin_nested():
        session.add(Group(name="inner"))
    assert queued_ids() == []  # a worker would find no row yet
    enqueue_after_commit(session, sample_jobs.rename_group, 2, "y")
    with session.begin_nested():
        session.add(Group(name="inner 2"))
    assert queued_ids() == []
    session.commit()
    assert len(queued_ids()) == 2


# --- killed processes: the scheduler's lock, two crons --------------------------------------------
@contextlib.contextmanager
def _telline(command: list[str], url: str, redis_url: str, log_path: Path):
    """`telline COMMAND` in a process group of its own, killed (the whole group) on the way out."""
    env = dict(os.environ, TELLINE_DATABASE_URL=url, TELLINE_REDIS_URL=redis_url, TWILIO_AUTH_TOKEN="x",
               TELLINE_LOG_FORMAT="json", PYTHONPATH=str(REPO))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "telline", *command], env=env, cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return value


def _scheduler_locks(connection) -> dict[str, str]:
    from rq.scheduler import RQScheduler
    return {name: owner.decode() for name in ("urgent", "default", "bulk")
            if (owner := connection.get(RQScheduler.get_locking_key(name)))}


@pytest.fixture
def migrated_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.mark.timing
@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the scheduler process through /proc")
def test_the_scheduler_of_a_worker_killed_alone_stops_and_frees_its_lock(migrated_sqlite, tmp_path, redis_url,
                                                                         redis_conn):
    """kill -9 the worker process only: RQ's scheduler, forked from it, must not live on as an orphan
    holding the scheduler lock."""
    from tests.processes import process_tree
    with _telline(["worker"], migrated_sqlite, redis_url, tmp_path / "worker.log") as worker:
        _wait(lambda: len(_scheduler_locks(redis_conn)) == 3, 30, "the worker's scheduler holding its locks")
        scheduler_pids = _wait(lambda: [p for p in process_tree(worker.pid) if p != worker.pid], 10,
                               "the scheduler process")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        killed_at = time.monotonic()
        _wait(lambda: not _scheduler_locks(redis_conn), 10, "the scheduler lock freed")
        _wait(lambda: not any(_is_running(pid) for pid in scheduler_pids), 10, "the orphaned scheduler gone")
        assert time.monotonic() - killed_at < 5


def _is_running(pid: int) -> bool:
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return False


@pytest.mark.timing
@pytest.mark.slow
def test_a_scheduler_killed_with_its_worker_is_replaced_within_seconds(migrated_sqlite, tmp_path, redis_url,
                                                                       redis_conn):
    """kill -9 a worker and its scheduler: RQ's lock would stay 61 s, and every delayed job (retries,
    texts put back for a moment) with it. Another worker takes over within seconds."""
    import datetime as dt

    from tests.processes import process_tree
    with _telline(["worker"], migrated_sqlite, redis_url, tmp_path / "first.log") as first:
        _wait(lambda: len(_scheduler_locks(redis_conn)) == 3, 30, "the first worker's scheduler")
        dead_owner = _scheduler_locks(redis_conn)["bulk"]
        _wait(lambda: len(process_tree(first.pid)) > 1, 10, "the scheduler process")
        for pid in process_tree(first.pid):
            os.kill(pid, signal.SIGKILL)
        first.wait(10)
    killed_at = time.monotonic()
    app = create_app(make_settings(migrated_sqlite, redis_url))
    with _telline(["worker"], migrated_sqlite, redis_url, tmp_path / "second.log"), app.app_context():
        queues()["bulk"].enqueue_in(dt.timedelta(seconds=1), sample_jobs.append_to_list, "delayed", "ran")
        _wait(lambda: redis_conn.lrange("delayed", 0, -1) == [b"ran"], 30, "the delayed job to run")
        assert time.monotonic() - killed_at < 25
        assert _scheduler_locks(redis_conn)["bulk"] != dead_owner
    app.extensions["telline.db"].dispose()


@pytest.mark.slow
def test_two_cron_processes_enqueue_each_periodic_run_once(migrated_sqlite, tmp_path, redis_url, redis_conn):
    with contextlib.ExitStack() as stack:
        crons = [stack.enter_context(_telline(["cron", "--sweep-every", "1"], migrated_sqlite, redis_url,
                                              tmp_path / f"cron-{i}.log")) for i in range(2)]
        # Until both crons have raced for some ticks, not a fixed sleep: under a loaded CI machine
        # starting two Python processes alone can take seconds.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                len(redis_conn.lrange("rq:queue:urgent", 0, -1)) >= 3
                and "already enqueued by another cron" in _logs(tmp_path)):
            time.sleep(0.5)
        for proc in crons:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    app = create_app(make_settings(migrated_sqlite, redis_url))
    with app.app_context():
        ids = queues()["urgent"].get_job_ids()
    app.extensions["telline.db"].dispose()
    assert len(ids) >= 3
    assert all(re.fullmatch(r"(sweep-tasks|replay-parked-texts)-\d{8}T\d{6}Z", job_id) for job_id in ids), ids
    assert len(set(ids)) == len(ids)  # one job per tick, though two crons saw every tick
    assert "already enqueued by another cron" in _logs(tmp_path)


def _logs(tmp_path: Path) -> str:
    return "".join(path.read_text() for path in sorted(tmp_path.glob("cron-*.log")))


@pytest.mark.parametrize("option", ["--sweep-every", "--tick-every"])
@pytest.mark.parametrize("seconds", ["0", "7", "61", "-5", "soon"])
def test_a_sweep_interval_that_does_not_divide_a_minute_is_refused_in_one_sentence(runner, seconds, option):
    from telline.cli import cli
    r = runner.invoke(cli, ["cron", option, seconds])
    assert r.exit_code == 2
    assert "divides 60" in r.output or "is not a valid integer" in r.output
