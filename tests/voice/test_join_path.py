"""The join path as it runs at a meeting's start: a committed PostgreSQL database (not one test
transaction), one statement per request, and the line's configuration kept a few seconds."""

import enum
import time
import types

import pytest
import sqlalchemy as sa

from telline import create_app, db, migrate
from telline.models import Call, ConferenceParticipant, Line, MeetingOccurrence, MeetingSeries, WebhookKey
from telline.voice.directory import LineDirectory
from tests.conftest import fresh_postgres_database, make_settings
from tests.signing import post_signed
from tests.voice.conftest import PUBLIC_URL, call, conference, meeting, new_group, parse, press, said


@pytest.fixture
def committed(redis_url, redis_conn):
    """An app on its own PostgreSQL database, every commit real; a group with a meeting on now."""
    with fresh_postgres_database("telline_join") as url:
        migrate.upgrade(url)
        app = create_app(make_settings(url, redis_url, public_url=PUBLIC_URL))
        with app.app_context():
            session = db.session()
            group = new_group(session, timezone="Europe/London")
            line = session.scalar(sa.select(Line))
            series = meeting(session, group, line)
            code = series.access_code
            session.close()
        yield app, code
        app.extensions[db.EXTENSION].dispose()


def statements_during(app, action):
    seen = []

    def note(conn, cursor, statement, params, context, many):
        # autocommit: psycopg sends no BEGIN before it and no COMMIT after it
        autocommit = conn.connection.dbapi_connection.autocommit
        seen.append(statement.split(None, 1)[0].upper() + (" (autocommit)" if autocommit else ""))
    database = app.extensions[db.EXTENSION]
    engines = (database.engine, database.autocommit_engine)
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", note)
    try:
        result = action()
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", note)
    return seen, result


def test_a_caller_joins_with_one_statement_per_request(committed):
    app, code = committed
    client = app.test_client()
    sid, _ = call(client, sender="+447911000001")
    press(client, sid, code)  # the first caller reads the line and creates the meeting's row
    sid, _ = call(client, sender="+447911000002")

    seen, (sid, root) = statements_during(app, lambda: call(client, sender="+447911000003"))
    assert seen == [] and "enter your meeting code" in said(root)  # nothing to keep yet
    seen, root = statements_during(app, lambda: press(client, sid, code))
    assert seen == ["WITH (autocommit)"] and conference(root) is not None  # the call's row, with its seat

    with app.app_context():
        row = db.session().scalar(sa.select(Call).where(Call.twilio_sid == sid))
        assert (row.role, row.from_number, row.occurrence_id is not None) == ("member", "+447911000003", True)
        with db.database().autocommit_engine.connect() as connection:  # its commits do not wait for the disk
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"


def test_a_change_made_elsewhere_reaches_callers_within_the_ttl(committed):
    app, code = committed
    app.extensions["telline.line_directory"] = LineDirectory(ttl=0.5)
    client = app.test_client()
    call(client, sender="+447911000001")  # the line is read and kept
    with app.app_context():  # another process ends the series (no ORM event reaches this one)
        session = db.session()
        session.execute(sa.update(MeetingSeries).values(active=False))
        session.commit()
    _, root = call(client, sender="+447911000002")
    assert "enter your meeting code" in said(root)  # still kept
    time.sleep(0.6)
    _, root = call(client, sender="+447911000003")
    assert "There is no meeting planned on this line" in said(root)


def test_a_wrong_code_takes_the_full_path_and_is_counted(committed):
    app, code = committed
    client = app.test_client()
    sid, _ = call(client, sender="+447911000001")
    assert "Sorry, that code did not work" in said(press(client, sid, "0000000"))
    with app.app_context():
        session = db.session()
        assert session.scalar(sa.select(Call.code_attempts).where(Call.twilio_sid == sid)) == 1


def test_a_change_made_through_this_process_is_seen_at_once(committed):
    app, code = committed
    app.extensions["telline.line_directory"] = LineDirectory(ttl=3600)
    client = app.test_client()
    call(client, sender="+447911000001")  # the line is read and kept
    with app.app_context():  # a coordinator's page in this worker ends the series
        session = db.session()
        session.scalar(sa.select(MeetingSeries)).active = False
        session.commit()
    _, root = call(client, sender="+447911000002")
    assert "There is no meeting planned on this line" in said(root)


@pytest.mark.parametrize("to,sender", [("not a number", "garbage"), ("+15005559999", "+447911000001"), ("", "")])
def test_a_code_with_a_garbled_or_foreign_from_and_to_is_answered_from_the_call_row(committed, to, sender):
    """Once a call has a row (here: after a wrong code), its line and caller come from the row:
    the quick way in finds no line for such a To and the full path answers from the row."""
    app, code = committed
    client = app.test_client()
    sid, _ = call(client, sender="+447911000001")
    assert "that code did not work" in said(press(client, sid, "000000"))
    r = post_signed(client, "/twilio/voice/code", {"CallSid": sid, "AccountSid": "AC" + "1" * 32,
                                                   "Digits": code, "From": sender, "To": to})
    assert r.status_code == 200 and conference(parse(r)) is not None
    with app.app_context():
        row = db.session().scalar(sa.select(Call).where(Call.twilio_sid == sid))
        assert (row.role, row.from_number, row.code_attempts) == ("member", "+447911000001", 1)


@pytest.mark.parametrize("to", ["not a number", "+15005559999", ""])
def test_a_code_for_a_call_with_no_row_and_no_known_line_is_told_so_and_nothing_is_written(committed, to):
    app, code = committed
    client = app.test_client()
    r = post_signed(client, "/twilio/voice/code", {"CallSid": "CA" + "5" * 32, "AccountSid": "AC" + "1" * 32,
                                                   "Digits": code, "From": "+447911000001", "To": to})
    assert r.status_code == 200 and "not connected to a support group" in said(parse(r))
    with app.app_context():
        assert db.session().scalars(sa.select(Call)).all() == []



def test_the_seat_statement_hands_the_driver_plain_values(committed):
    """An enum as a parameter costs psycopg a dumper lookup per statement (a tenth of a millisecond,
    a third of the join path's database time: tests/bench/profile_join_path.py): the occurrence's
    status reaches it as the plain string the column holds."""
    app, code = committed
    client = app.test_client()
    sid, _ = call(client, sender="+447911000001")
    press(client, sid, code)
    sid, _ = call(client, sender="+447911000002")
    sent = []
    engine = app.extensions[db.EXTENSION].autocommit_engine

    def note(conn, cursor, statement, params, context, many):
        sent.extend(params.values() if isinstance(params, dict) else params)
    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        assert conference(press(client, sid, code)) is not None
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
    assert "ended" in sent and "cancelled" in sent
    assert [value for value in sent if isinstance(value, enum.Enum)] == []


def test_a_callers_participant_join_is_one_durable_statement(committed):
    """Every caller brings a participant-join: one statement in autocommit, on a connection whose
    commits wait for the disk (nothing records a callback again), which goes back to the pool out
    of autocommit; a repeat changes nothing; callers waiting for a host take the full path."""
    from tests.voice.test_roster_and_moderation import event
    app, code = committed
    client = app.test_client()
    sids = []
    for number in ("+447911000001", "+447911000002"):
        sid, _ = call(client, sender=number)
        press(client, sid, code)
        sids.append(sid)
    with app.app_context():
        occ = db.session().scalar(sa.select(MeetingOccurrence))
    conference_sid = "CF" + "5" * 32
    running = types.SimpleNamespace(conference_sid=conference_sid, conference_name=occ.conference_name)

    seen, _ = statements_during(app, lambda: event(client, running, "participant-join", sids[0], seq=1))
    # No conference running yet: the one statement writes nothing, and the full path claims this one
    # (key, meeting and call, the claim, the participant's row) in one transaction.
    assert seen == ["WITH (autocommit)", "INSERT", "SELECT", "UPDATE", "INSERT"]
    seen, _ = statements_during(app, lambda: event(client, running, "participant-join", sids[1], seq=2,
                                                   Muted="false", Hold="false"))
    assert seen == ["WITH (autocommit)"]
    seen, _ = statements_during(app, lambda: event(client, running, "participant-join", sids[1], seq=2,
                                                   Muted="false", Hold="false"))
    assert seen == ["WITH (autocommit)"]  # a repeat: found, nothing written

    with app.app_context():
        session = db.session()
        rows = session.scalars(sa.select(ConferenceParticipant).order_by(ConferenceParticipant.id)).all()
        assert [(p.call_sid, p.joined_at is not None, p.last_sequence) for p in rows] == [(sids[0], True, 1),
                                                                                            (sids[1], True, 2)]
        assert session.scalar(sa.select(MeetingOccurrence.conference_sid)) == conference_sid
        assert session.scalar(sa.select(sa.func.count()).select_from(WebhookKey)) == 2
        with db.database().engine.connect() as connection:  # the pool the statement's connection went back to
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            assert connection.connection.dbapi_connection.autocommit is False
