"""Fixtures: real Redis, real SQLite and PostgreSQL, an app per test with a rolled-back transaction.

Every test that takes `app` (or `client`, `session`) runs once per database
backend. PostgreSQL comes from TELLINE_TEST_POSTGRES_URL (default: the local
server on 127.0.0.1:5432, database `test`); a fresh database is created for
the run and dropped after it. Without a server the PostgreSQL variants are
skipped with the reason shown — except under CI, where they must run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit

import pytest
import redis
import sqlalchemy as sa

from telline import create_app, localredis, migrate
from telline.config import load
from telline.db import EXTENSION as DB_EXTENSION
from telline.sms import send_pool

pytest_plugins = ["tests.standin_plugin"]

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
# PostgreSQL makes an instance a deployment (telline.config): its secrets must be real-looking, 32+ characters.
SECRET_KEY = "test-secret-key-0123456789abcdef"
ACCOUNT_SID = "AC" + "1" * 32
PG_ADMIN_URL = os.environ.get("TELLINE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = bool(os.environ.get("CI")) or bool(os.environ.get("TELLINE_REQUIRE_POSTGRES"))


# --- Redis --------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_url():
    """TELLINE_TEST_REDIS_URL (default database 13), flushed around each test; each pytest-xdist
    worker (gw0, gw1, …) takes the next database up, so parallel workers never flush each other."""
    url = os.environ.get("TELLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    worker_id = os.environ.get("PYTEST_XDIST_WORKER")  # set by xdist in its workers only
    if worker_id:
        parts = urlsplit(url)
        base = int(parts.path.strip("/") or 0)
        database = base + int(worker_id.removeprefix("gw"))
        if database > 15:
            pytest.exit(f"no Redis database {database} for xdist worker {worker_id}: run fewer workers (-n)")
        url = parts._replace(path=f"/{database}").geturl()
    url, private = localredis.ensure(url)
    yield url
    if private:
        private.stop()


@pytest.fixture
def redis_conn(redis_url):
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


# --- databases ----------------------------------------------------------------
def _pg_admin_engine() -> sa.Engine | None:
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    for attempt in range(2):
        try:
            with engine.connect():
                return engine
        except sa.exc.OperationalError:
            if attempt == 0 and not _start_local_postgres():
                break
    engine.dispose()
    return None


def _start_local_postgres() -> bool:
    """Debian's cluster tools can start a stopped local server (as CI's machines have)."""
    if "127.0.0.1" not in PG_ADMIN_URL or not shutil.which("pg_ctlcluster"):
        return False
    try:
        versions = os.listdir("/etc/postgresql")
    except OSError:
        return False
    for version in versions:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       capture_output=True, timeout=60)
    return True


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'telline.sqlite3'}"
        migrate.upgrade(url)
        yield url
        return
    with fresh_postgres_database("telline_test") as url:
        migrate.upgrade(url)
        yield url


@contextlib.contextmanager
def fresh_postgres_database(prefix: str):
    """A new, empty PostgreSQL database for this run (dropped after); skips — or, under CI,
    fails — with the reason when no server answers."""
    admin = _pg_admin_engine()
    if admin is None:
        reason = f"PostgreSQL not reachable at {PG_ADMIN_URL} (set TELLINE_TEST_POSTGRES_URL)"
        if REQUIRE_PG:
            pytest.fail(reason + " — required under CI")
        pytest.skip(reason)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()


def make_settings(database_url, redis_url, **overrides):
    values = dict(database_url=database_url, redis_url=redis_url, testing=True,
                  twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                  secret_key=SECRET_KEY, log_format="json", log_level="INFO")
    values.update(overrides)
    return load(env={}, **values)


@pytest.fixture
def settings_overrides():
    """Override in a test module to change the app's settings."""
    return {}


@pytest.fixture
def app(database_url, redis_url, redis_conn, settings_overrides):
    """An app whose every commit is undone after the test (savepoints in one outer transaction)."""
    overrides = dict(settings_overrides)  # a test module may point the app at a Redis of its own
    app = create_app(make_settings(database_url, overrides.pop("redis_url", redis_url), **overrides))
    database = app.extensions[DB_EXTENSION]
    connection = database.engine.connect()
    outer = connection.begin()
    # Every session joins this one transaction through savepoints: commits in the code under test
    # become savepoint releases, and nothing persists. The quick join path's autocommit pool would
    # write outside it: without that pool, it writes on the session's connection (as on SQLite).
    database.sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
    database.autocommit_engine = None
    with app.app_context():
        yield app
    send_pool.close(app)  # its threads, if a batch started them
    outer.rollback()
    connection.close()
    database.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def session(app):
    from telline import db
    return db.session()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
