"""Alembic environment: telline passes the URL (or an open connection) itself.

There is no alembic.ini: `telline db upgrade` and the tests build the Config in
telline.migrate, so the one source of the database URL stays telline.config.
"""

import contextlib

import sqlalchemy as sa
from alembic import context

from telline.db import make_engine
from telline.migrate import MIGRATION_LOCK
from telline.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("telline.migrate.alembic_config() gives a URL or a connection")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            with _sqlite_foreign_keys_off(connection):
                with connection.begin():
                    _run(connection)
    finally:
        engine.dispose()


@contextlib.contextmanager
def _sqlite_foreign_keys_off(connection):
    """SQLite ALTERs in batch mode copy, drop and rename tables: with foreign keys on, the
    drop would cascade to child rows. Alembic's advice: turn them off around the migration,
    then check nothing points nowhere before turning them back on."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection  # outside any transaction: PRAGMA takes effect
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration left rows pointing nowhere: {broken[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _render_item(type_, obj, _autogen_context):
    # UTCDateTime is Python-side behaviour only: the column is a plain timestamptz.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _one_migration_at_a_time(connection) -> None:
    """Wait for any other migration of this database to finish; the lock ends with this
    transaction. PostgreSQL only: several machines migrate it; SQLite serves one."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))


def _run(connection) -> None:
    _one_migration_at_a_time(connection)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs need batch mode
        compare_type=True,
        render_item=_render_item,
    )
    config.attributes["revision_before"] = context.get_context().get_current_revision()
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `telline db upgrade`")
run_migrations_online()
