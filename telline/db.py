"""The SQLAlchemy engine and the per-app-context session.

One `Database` per app, kept in `app.extensions`. Code inside a request or a job
calls `session()`; the session lives as long as the app context (in `flask.g`)
and is closed at teardown, so a job or a request never sees another one's half-done work.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from telline import db_deadline

EXTENSION = "telline.db"
_SESSION_KEY = "_telline_db_session"
_DEADLINE_KEY = "_telline_db_deadline"

# What "the database did not answer" looks like through SQLAlchemy: refused, lost, cut by the
# request's deadline, a statement or lock wait cut short by the server, no connection free in
# the pool. Not a bad value or a bug: those are other errors.
UNAVAILABLE: tuple[type[Exception], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def error_name(error: BaseException) -> str:
    """What a log line may say of a database error: the driver's error class ("ConnectionTimeout",
    "LockNotAvailable"…). Not its message: SQLAlchemy's carries the statement's parameters, and
    with them members' numbers."""
    return type(getattr(error, "orig", None) or error).__name__

# libpq parameters for every PostgreSQL connection. connect_timeout: a server that is down, or
# accepts and never answers (stopped), fails a new connection in 2 s (libpq's minimum), not the
# OS's minutes. Keepalives and tcp_user_timeout drop a connection to a host gone from the
# network (probes unanswered, data unacknowledged 10 s). A stopped server whose kernel still
# acknowledges defeats both: telline.db_deadline handles that one.
_POSTGRES_CONNECT_ARGS = {"connect_timeout": 2, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                          "keepalives_count": 3, "tcp_user_timeout": 10_000}
# Server-side limits (libpq `options`). Every connection: a transaction left idle (a client that
# died holding locks) is ended after a minute. A connection opened to serve a request: its
# statements and lock waits are cut short inside the request's deadline, so a slow but live
# server answers with an error the webhook turns into an apology. Jobs, commands and migrations
# keep no statement limit (a prune or a migration may take longer).
_EVERY_SESSION = "-c idle_in_transaction_session_timeout=60s"
_REQUEST_SESSION = "-c statement_timeout=3s -c lock_timeout=2s"


class Database:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # PostgreSQL: the pool behind autocommit_connection(); connects on first use only. None: the
        # session's own connection serves (SQLite; tests that run everything in one transaction).
        self.autocommit_engine: sa.Engine | None = (make_autocommit_engine(url) if not url.startswith("sqlite")
                                                    else None)
        # A forked worker child must not reuse the parent's sockets.
        os.register_at_fork(after_in_child=lambda: self.dispose(close=False))

    def dispose(self, close: bool = True) -> None:
        for engine in (self.engine, self.autocommit_engine):
            if engine is not None:
                engine.dispose(close=close)


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
        event.listen(engine, "connect", _sqlite_on_connect)
        # pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN
        # itself (the recipe from SQLAlchemy's SQLite dialect docs). IMMEDIATE: a transaction
        # that reads then writes must queue behind another writer (busy_timeout) — with a
        # plain BEGIN it fails at once with "database is locked" when the other commits first.
        # The price: one writer at a time, so nobody may hold a transaction across a network
        # call (jobs commit before talking to Twilio).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    engine = sa.create_engine(url, connect_args=_postgres_connect_args())
    _limit_to_request_deadline(engine)
    _ping_after_idle(engine)
    return engine


def _postgres_connect_args(options: str = "") -> dict[str, object]:
    return {**_POSTGRES_CONNECT_ARGS, "options": f"{options} {_EVERY_SESSION}".strip()}


def make_autocommit_engine(url: str) -> sa.Engine:
    """Connections for autocommit_connection(): autocommit (one round trip a statement) and
    PostgreSQL's asynchronous commit, so a commit does not wait for its WAL to reach the disk.
    What that risks: a server crash may lose the last fraction of a second of these rows
    (3 × wal_writer_delay), never corrupt anything. They are a caller's way into a meeting,
    which Twilio's conference callbacks record again."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT",
                              connect_args=_postgres_connect_args("-c synchronous_commit=off"),
                              pool_reset_on_return=None)  # autocommit: no transaction to roll back
    _limit_to_request_deadline(engine)
    _ping_after_idle(engine)
    return engine


def _limit_to_request_deadline(engine: sa.Engine) -> None:
    """While a request's deadline runs (telline.db_deadline), each connection it checks out is
    watched until it comes back, and one it opens gets the request's server-side limits.
    Registered before _ping_after_idle: the ping at checkout is watched too."""

    @event.listens_for(engine, "do_connect")
    def _request_session(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        if db_deadline.current() is not None:
            cparams["options"] = f"{cparams.get('options', '')} {_REQUEST_SESSION}".strip()

    @event.listens_for(engine, "checkout")
    def _watch(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        deadline = db_deadline.current()
        if deadline is not None:
            record.info[_DEADLINE_KEY] = db_deadline.WATCHDOG.arm(dbapi_connection.fileno(), deadline)

    def _unwatch(_dbapi_connection: Any, record: ConnectionPoolEntry, *_: Any) -> None:
        token = record.info.pop(_DEADLINE_KEY, None)
        if token is not None:
            db_deadline.WATCHDOG.disarm(token)

    # Back in the pool, or about to be closed (the watchdog must never touch a reused fd).
    for name in ("checkin", "invalidate", "close", "detach"):
        event.listen(engine, name, _unwatch)


# A pooled connection idle longer than this is pinged before use (a server restart, a
# firewall's idle timeout). SQLAlchemy's pool_pre_ping pings at every checkout: a round trip
# per request, a fifth of a join path's database time when a meeting starts and connections
# are never idle.
PING_AFTER_IDLE = 10.0  # seconds


def _ping_after_idle(engine: sa.Engine) -> None:
    """SQLAlchemy's recipe for custom pessimistic disconnect handling: a DisconnectionError raised
    at checkout makes the pool discard that connection and retry with a fresh one."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since > PING_AFTER_IDLE:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except engine.dialect.loaded_dbapi.Error as exc:
                raise sa.exc.DisconnectionError("the database closed an idle connection") from exc


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL lets the web process read while a worker writes; the wait beats "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.close()


def init_app(app: Flask, url: str) -> Database:
    database = Database(url)
    app.extensions[EXTENSION] = database
    app.before_request(_start_deadline)
    app.teardown_request(_end_deadline)
    app.teardown_appcontext(_close_session)
    return database


def _start_deadline() -> None:
    g.setdefault(_DEADLINE_KEY, db_deadline.start_request())


def _end_deadline(_exc: BaseException | None) -> None:
    token = g.pop(_DEADLINE_KEY, None)
    if token is not None:
        db_deadline.end_request(token)


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop(_SESSION_KEY, None)
    if s is not None:
        s.close()


def database() -> Database:
    return cast(Database, current_app.extensions[EXTENSION])  # put there by init_app


@contextlib.contextmanager
def autocommit_connection(session: Session) -> Iterator[sa.Connection]:
    """A connection in autocommit, with PostgreSQL's asynchronous commit, for a request whose one
    database step is a single statement (a caller taking a seat): one round trip — no BEGIN, no
    COMMIT — whose commit does not wait for the disk (make_autocommit_engine says what that risks).
    Without such a pool (SQLite, where a second connection would wait for the session's write
    lock) the session's own connection, committed with the session."""
    engine = database().autocommit_engine
    if engine is None:
        yield session.connection()
        return
    with engine.connect() as connection:
        yield connection


@contextlib.contextmanager
def durable_statement_connection(session: Session) -> Iterator[sa.Connection]:
    """A connection in autocommit for a request whose one database step is a single statement that
    must be as durable as any transaction (a conference callback: nothing records it again): one
    round trip, no BEGIN, no COMMIT, and its commit waits for the disk as usual. A connection of the
    session's own pool, taken before the session takes one (psycopg switches autocommit on and back
    off without a round trip). Where autocommit_connection() has no pool of its own (SQLite; the
    tests' one transaction), the session's own connection, committed with the session."""
    if database().autocommit_engine is None:
        yield session.connection()
        return
    with database().engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


def insert_for(dialect: str) -> Callable[[Any], postgresql.Insert | sqlite.Insert]:
    """The dialect's own INSERT construct (ON CONFLICT … DO NOTHING / DO UPDATE, RETURNING): telline's
    two databases spell them alike. `dialect`: an engine's dialect.name."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def rows_changed(result: sa.Result[Any]) -> int:
    """How many rows an UPDATE or DELETE given to Session.execute changed. Session.execute is
    typed as returning any Result; for such a statement it is a CursorResult, which counts them."""
    if not isinstance(result, sa.CursorResult):
        raise TypeError(f"not the result of an UPDATE or DELETE: {type(result).__name__}")
    return result.rowcount


def session() -> Session:
    """The current app context's session (one per request, one per job)."""
    s: Session | None = g.get(_SESSION_KEY)
    if s is None:
        s = g.setdefault(_SESSION_KEY, database().sessionmaker())
    return s
