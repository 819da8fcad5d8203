import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

from telline import migrate
from telline.db import make_engine
from telline.models import (
    AppendOnlyError,
    Base,
    ConsentEvent,
    Group,
    MeetingOccurrence,
    MeetingSeries,
    Member,
    UTCDateTime,
)
from tests.conftest import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with fresh_postgres_database("telline_empty") as url:
        yield url


def test_migrations_build_an_empty_database_that_matches_the_models(empty_database_url):
    assert migrate.current(empty_database_url) is None
    migrate.upgrade(empty_database_url)
    assert migrate.current(empty_database_url) == migrate.head()
    engine = make_engine(empty_database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"
    assert {"groups", "lines", "members", "memberships", "users", "user_groups", "api_tokens", "audit_events",
            "consent_events", "messages", "calls", "conference_participants", "webhook_keys", "reminders",
            "calendar_feeds"} <= tables
    assert not {"coordinators", "coordinator_roles"} & tables


def test_0007_keeps_each_series_in_its_groups_zone_and_each_meeting_where_it_was(empty_database_url):
    """Series and meetings made before 0007: the series takes its group's zone, a meeting's place in
    its rule is its start, and the default reminders are set."""
    migrate.upgrade(empty_database_url, "0006")
    engine = make_engine(empty_database_url)
    start = dt.datetime(2026, 12, 8, 18, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO groups (id, name, language, timezone, default_region, "
                             "join_needs_confirmation, quiet_start, quiet_end, crisis_resource, coordinator_contact, "
                             "created_at) VALUES (1, 'g', 'fr', 'Europe/Paris', 'FR', true, '21:00:00', '08:00:00', "
                             "'', '', :now)"), {"now": start})
        conn.execute(sa.text("INSERT INTO lines (id, group_id, phone_number, label, sms_rate, sms_rate_unit, "
                             "created_at) VALUES (1, 1, '+33612345678', '', 1, 'segments', :now)"), {"now": start})
        conn.execute(sa.text(
            "INSERT INTO meeting_series (id, group_id, line_id, title, first_start, rrule, duration_minutes, "
            "access_code, active, join_early_minutes, max_participants, caller_id_joins, host_leaving_ends, "
            "announce_entries, record_names, record, created_at) VALUES (1, 1, 1, 't', :now, 'FREQ=WEEKLY', 60, "
            "'1234567', true, 10, 40, false, true, false, false, false, :now)"), {"now": start})
        conn.execute(sa.text(
            "INSERT INTO meeting_occurrences (id, series_id, starts_at, ends_at, status, conference_name, locked) "
            "VALUES (1, 1, :now, :now, 'scheduled', 'tl-x', false)"), {"now": start})
    engine.dispose()
    migrate.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    with Session(engine) as session:
        series = session.get(MeetingSeries, 1)
        assert (series.timezone, series.reminder_offsets) == ("Europe/Paris", [1440, 15])
        assert session.get(MeetingOccurrence, 1).original_start == start
        assert session.get(Group, 1).message_retention_days == 180
    engine.dispose()


def test_migrations_go_down_and_up_again(empty_database_url):
    migrate.upgrade(empty_database_url)
    migrate.downgrade(empty_database_url, "base")
    assert migrate.current(empty_database_url) is None
    migrate.upgrade(empty_database_url)
    assert migrate.current(empty_database_url) == migrate.head()


def test_upgrade_twice_is_harmless(empty_database_url):
    migrate.upgrade(empty_database_url)
    migrate.upgrade(empty_database_url)
    assert migrate.current(empty_database_url) == migrate.head()


def test_times_come_back_aware_and_in_utc(session):
    paris = dt.datetime(2026, 11, 26, 21, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    g = Group(name="Carers", created_at=paris)
    session.add(g)
    session.commit()
    session.expire_all()
    got = session.get(Group, g.id).created_at
    assert got == paris and got.utcoffset() == dt.timedelta(0)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(dt.datetime(2026, 1, 1), None)


def test_consent_ledger_is_append_only(session):
    event = ConsentEvent(phone="+33612345678", action="opt_out", source="keyword")
    session.add(event)
    session.commit()
    event.action = "opt_in"
    with pytest.raises(AppendOnlyError):
        session.commit()
    session.rollback()
    session.delete(session.get(ConsentEvent, event.id))
    with pytest.raises(AppendOnlyError):
        session.commit()
    session.rollback()
    assert session.scalars(sa.select(ConsentEvent.action)).all() == ["opt_out"]


def test_a_phone_number_belongs_to_one_member(session):
    session.add(Member(display_name="A", phone="+33612345678"))
    session.commit()
    session.add(Member(display_name="B", phone="+33612345678"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()
    session.rollback()


def test_upgrading_a_database_with_rows_keeps_them_and_fills_new_columns(empty_database_url):
    migrate.upgrade(empty_database_url, "0001")
    engine = make_engine(empty_database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO groups (name, language, timezone, default_region, created_at) "
                             "VALUES ('Carers', 'en', 'UTC', 'GB', CURRENT_TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO lines (group_id, phone_number, label, created_at) "
                             "VALUES (1, '+441234567890', '', CURRENT_TIMESTAMP)"))
    engine.dispose()
    migrate.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    from sqlalchemy.orm import Session

    from telline.models import Line
    with Session(engine) as session:
        group = session.get(Group, 1)
        assert (group.name, group.quiet_start, group.quiet_end, group.join_needs_confirmation) == \
            ("Carers", dt.time(21), dt.time(8), True)
        line = session.get(Line, 1)
        assert (line.sms_rate, line.sms_rate_unit) == (1.0, "segments")
    engine.dispose()


class TestIdleConnections:
    """A pooled connection the server dropped while it sat idle is replaced, not handed to a request;
    one in steady use is not pinged (a round trip a request)."""

    @pytest.fixture
    def engine(self):
        with fresh_postgres_database("telline_idle") as url:
            engine = make_engine(url)
            yield engine
            engine.dispose()

    def backend_pid(self, engine):
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()

    def test_a_connection_dropped_while_idle_is_replaced(self, engine, monkeypatch):
        import telline.db
        pid = self.backend_pid(engine)  # the pool's one connection, now idle
        with sa.create_engine(engine.url, poolclass=sa.NullPool).connect() as admin:  # the server drops it
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        monkeypatch.setattr(telline.db, "PING_AFTER_IDLE", 0.0)
        assert self.backend_pid(engine) != pid  # the pool's first connection was dropped: a new one

    def test_a_connection_in_use_is_not_pinged(self, engine, monkeypatch):
        pings = []
        original = engine.dialect.do_ping
        monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(1) or original(conn))
        for _ in range(5):
            self.backend_pid(engine)
        assert pings == []
        import telline.db
        monkeypatch.setattr(telline.db, "PING_AFTER_IDLE", 0.0)
        self.backend_pid(engine)
        assert pings == [1]
