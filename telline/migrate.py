"""Schema migrations (Alembic), driven from Python so the URL comes from telline.config."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# The PostgreSQL advisory lock every migration takes first (migrations/env.py), so two
# `telline db upgrade` started at once (two release jobs, two containers) run one after the
# other: the second waits, then finds nothing left to do. Any fixed 64-bit key: "telline".
MIGRATION_LOCK = int.from_bytes(b"telline", "big")


def alembic_config(url: str | None = None, connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str, revision: str = "head") -> str | None:
    """Migrate up to `revision`; returns the revision the database was at (None: empty), as
    read under the migration lock, so of two upgrades at once only one reports the change."""
    cfg = alembic_config(url)
    command.upgrade(cfg, revision)
    before: str | None = cfg.attributes.get("revision_before")  # set by migrations/env.py
    return before


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head() -> str | None:
    """The newest revision (None only for a tree without migrations)."""
    from alembic.script import ScriptDirectory
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from telline.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
