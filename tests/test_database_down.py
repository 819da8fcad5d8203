"""The database stops answering: every webhook still answers within a few seconds, callers hear
an apology in their line's language, texts wait in Redis and are handled once it is back.

A private PostgreSQL server (tests/private_postgres.py) is frozen with SIGSTOP — the hard case:
its kernel still accepts connections and acknowledges every packet, so only telline's own
deadline (telline.db_deadline) ends the wait — and then shut down.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET

import psycopg
import pytest
import sqlalchemy as sa

from telline import create_app, db, jobs, migrate
from telline.models import Line, Message
from telline.sms import consent, parked
from telline.texts import t
from telline.voice.directory import directory
from tests.conftest import fresh_postgres_database, make_settings
from tests.private_postgres import PrivatePostgres
from tests.signing import post_signed
from tests.sms.conftest import LINE, PUBLIC_URL, new_group
from tests.voice.conftest import meeting, new_call_sid

pytestmark = pytest.mark.slow

MEMBER = "+33612345678"
APOLOGY_FR = t("voice.unavailable", "fr")


@pytest.fixture(scope="module")
def postgres():
    server = PrivatePostgres()
    yield server
    server.remove()


@pytest.fixture
def line_app(postgres, redis_url, redis_conn, standin):
    """An app on a new database of the private server, with a French group whose meeting is on
    now, called once: the process knows the line, as a web worker does after its first call."""
    postgres.start()
    url = postgres.new_database()
    migrate.upgrade(url)
    app = create_app(make_settings(url, redis_url, public_url=PUBLIC_URL, twilio_api_base_url=standin.url))
    with app.app_context():
        app.series = _meeting_on_now(db.session(), language="fr")
    warm = _post(app.test_client(), "/twilio/voice", _call_form(new_call_sid()))
    assert warm.status_code == 200 and "Tapez le code" in _said(warm)
    yield app
    app.extensions["telline.db"].dispose()
    postgres.stop()


def _meeting_on_now(session, language: str = "en"):
    group = new_group(session)
    group.language = language
    session.commit()
    return meeting(session, group, session.scalar(sa.select(Line).where(Line.group_id == group.id)))


def _call_form(sid: str, **extra) -> dict:
    return {"CallSid": sid, "AccountSid": "AC" + "1" * 32, "From": MEMBER, "To": LINE, "CallStatus": "ringing",
            **extra}


def _post(client, path: str, form: dict):
    return post_signed(client, path, form)


def _said(response) -> str:
    root = ET.fromstring(response.get_data(as_text=True))
    assert root.tag == "Response"
    return " ".join((el.text or "").strip() for el in root.iter("Say"))


def _timed(client, method: str, path: str, form: dict | None = None):
    started = time.monotonic()
    response = _post(client, path, form) if method == "POST" else client.get(path)
    return response, time.monotonic() - started


def _every_webhook(app) -> dict[str, tuple[object, float]]:
    with app.app_context():  # as 5 s after the last read: a call needs the database (the language is kept)
        directory().forget()
    client = app.test_client()
    sid = new_call_sid()
    return {
        "call": _timed(client, "POST", "/twilio/voice", _call_form(sid)),
        "right code": _timed(client, "POST", "/twilio/voice/code", _call_form(sid, Digits=app.series.access_code)),
        "wrong code": _timed(client, "POST", "/twilio/voice/code", _call_form(sid, Digits="000000")),
        "press 1": _timed(client, "POST", "/twilio/voice/remind", _call_form(sid, Digits="1")),
        "text": _timed(client, "POST", "/twilio/sms", {"MessageSid": "SM" + "7" * 32, "From": MEMBER, "To": LINE,
                                                       "Body": "STOP"}),
        "text status": _timed(client, "POST", "/twilio/sms/status", {"MessageSid": "SM" + "8" * 32,
                                                                    "MessageStatus": "delivered"}),
        "conference": _timed(client, "POST", "/twilio/voice/conference", {
            "ConferenceSid": "CF" + "1" * 32, "FriendlyName": "tl-x", "StatusCallbackEvent": "participant-join",
            "SequenceNumber": "1", "CallSid": sid}),
        "readyz": _timed(client, "GET", "/readyz"),
        "healthz": _timed(client, "GET", "/healthz"),
        "livez": _timed(client, "GET", "/livez"),
    }


def _assert_answered(answers, within: float):
    slow = {name: round(seconds, 2) for name, (_, seconds) in answers.items() if seconds > within}
    assert not slow, f"answered after more than {within} s: {slow}"
    for name in ("call", "right code", "wrong code", "press 1"):
        response, _ = answers[name]
        assert response.status_code == 200 and response.content_type.startswith("text/xml"), name
        assert _said(response) == APOLOGY_FR, name  # the line's language, known without the database
        assert ET.fromstring(response.get_data(as_text=True))[-1].tag == "Hangup"
    text, _ = answers["text"]
    assert text.status_code == 200 and _said(text) == ""  # valid TwiML, nothing sent back now
    assert [answers[n][0].status_code for n in ("text status", "conference")] == [204, 204]
    for probe in ("readyz", "healthz"):
        assert answers[probe][0].status_code == 503
        assert answers[probe][0].get_json()["database"] == "unavailable"
    assert answers["livez"][0].status_code == 200


def _replay_and_check_the_stop_was_kept(app, redis_conn):
    assert parked.waiting(redis_conn) == 1
    with app.app_context():
        assert jobs.replay_parked_texts() == 1
        session = db.session()
        stored = session.scalars(sa.select(Message).where(Message.twilio_sid == "SM" + "7" * 32)).all()
        assert [(m.direction, m.body) for m in stored] == [("inbound", "STOP")]
        assert consent.is_opted_out(session, MEMBER)
        assert jobs.replay_parked_texts() == 0
    assert parked.waiting(redis_conn) == 0


def test_a_frozen_database_every_webhook_answers_and_the_text_is_kept(line_app, postgres, redis_conn):
    postgres.freeze()
    try:
        answers = _every_webhook(line_app)
    finally:
        postgres.thaw()
    _assert_answered(answers, within=5.0)
    for probe in ("readyz", "healthz", "livez"):
        assert answers[probe][1] < 2.5, probe
    with line_app.app_context():  # the cut connections were discarded: the next request is served
        db.session().execute(sa.text("SELECT 1"))
    _replay_and_check_the_stop_was_kept(line_app, redis_conn)


def test_a_stopped_database_every_webhook_answers_and_the_text_is_kept(line_app, postgres, redis_conn):
    postgres.stop()
    answers = _every_webhook(line_app)
    _assert_answered(answers, within=1.0)
    with line_app.app_context():  # still down: the text waits
        assert jobs.replay_parked_texts() == 0
    postgres.start()
    _replay_and_check_the_stop_was_kept(line_app, redis_conn)


@pytest.mark.timing
def test_a_table_locked_by_someone_else_costs_a_caller_two_seconds_not_the_call(redis_url, redis_conn, standin):
    """A live but stuck database (a lock held by another session, as a long migration or a command
    would): the request's lock and statement limits end the wait well inside Twilio's 15 s."""
    with fresh_postgres_database("telline_locked") as url:
        migrate.upgrade(url)
        app = create_app(make_settings(url, redis_url, public_url=PUBLIC_URL, twilio_api_base_url=standin.url))
        with app.app_context():
            _meeting_on_now(db.session())
        # As in a web process, where every connection is opened by a request (and so carries
        # the request's limits): not the one that wrote the meeting above.
        app.extensions["telline.db"].dispose()
        client = app.test_client()
        sid = new_call_sid()
        _post(client, "/twilio/voice", _call_form(sid))  # a meeting is on: asks for the code, writes nothing
        plain_url = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain_url) as locker:
            locker.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")  # its transaction stays open
            release = threading.Timer(20, locker.close)  # the code as it was would wait for ever
            release.start()
            response, seconds = _timed(client, "POST", "/twilio/voice/code", _call_form(sid, Digits="000000"))
            release.cancel()
        app.extensions["telline.db"].dispose()
    assert seconds < 4.0
    assert response.status_code == 200 and _said(response) == t("voice.unavailable", "en")
