"""Faults behind the voice webhooks: every answer is still valid TwiML, in time, never a 500.

The app's Redis is a private redis-server of the test's own (telline.localredis), killed or
frozen with SIGSTOP while callers are on the line. Seating a caller needs the database only.
(The database stopping: tests/test_database_down.py.)
"""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest
import redis
import sqlalchemy as sa

from telline import localredis
from telline.models import Message
from telline.texts import t
from telline.voice import webhooks
from tests.voice.conftest import call, conference, meeting, press, said

CALLER = "+447911123456"


@pytest.fixture
def private_redis():
    server = localredis.start_private()
    yield server
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture
def redis_url(private_redis):
    """The app's Redis, for this module: the private one."""
    return private_redis.url


@pytest.fixture
def redis_conn(private_redis):
    """Nothing to flush: the private server goes with its test."""
    return redis.Redis.from_url(private_redis.url)


def _numbers_in(records) -> list[str]:
    return [r.getMessage() + repr(vars(r)) for r in records if "7911123456" in r.getMessage() + repr(vars(r))]


def test_a_whole_call_while_redis_is_down_wrong_code_then_right_code(client, session, group, line, private_redis,
                                                                     caplog):
    series = meeting(session, group, line)
    sid, root = call(client, sender=CALLER)
    assert "enter your meeting code" in said(root)
    private_redis.stop()
    with caplog.at_level(logging.INFO):
        root = press(client, sid, "000000")
    assert "that code did not work" in said(root)  # the caller can try again
    not_counted = [r for r in caplog.records if r.getMessage() == "wrong code not counted: Redis did not answer"]
    assert len(not_counted) == 1 and not _numbers_in(caplog.records)
    assert conference(press(client, sid, series.access_code)) is not None


def test_no_meeting_now_and_press_1_while_redis_is_down(client, session, group, line, private_redis):
    meeting(session, group, line, starts_in_minutes=180)
    private_redis.stop()
    sid, root = call(client, sender=CALLER)
    assert "The next Carers meeting" in said(root) and root.find("./Gather") is not None
    root = press(client, sid, "1", path="/twilio/voice/remind")
    # The reminder is kept (its texts wait in the database); what is said depends on whether the
    # job could be handed to Redis: either way words, then a goodbye.
    assert said(root) in (t("voice.reminder_set", "en"), t("voice.unavailable", "en"))
    assert [el.tag for el in root] == ["Say", "Hangup"]
    session.close()  # as the request's teardown does (this test's requests share one session)
    kinds = session.scalars(sa.select(Message.kind).where(Message.to_number == CALLER)).all()
    assert sorted(kinds) == ["reminder", "reply"]


@pytest.mark.timing
def test_a_frozen_redis_costs_a_wrong_code_a_second_not_the_call(client, session, group, line, private_redis):
    meeting(session, group, line)
    sid, _ = call(client, sender=CALLER)
    os.killpg(private_redis.process.pid, signal.SIGSTOP)  # accepts connections, never answers
    started = time.monotonic()
    root = press(client, sid, "000000")
    assert time.monotonic() - started < 3
    assert "that code did not work" in said(root)


def test_a_bug_behind_a_voice_webhook_is_an_apology_not_an_application_error(client, group, line, monkeypatch,
                                                                            caplog):
    def receive_call(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(webhooks, "receive_call", receive_call)
    _, root = call(client, sender=CALLER)  # 200 and TwiML, or it fails here
    assert said(root) == t("voice.unavailable", "en") and root[-1].tag == "Hangup"
    [failure] = [r for r in caplog.records if r.getMessage() == "voice webhook failed: answered with an apology"]
    assert failure.exc_info[1].args == ("a bug",)  # the traceback is in the log, for whoever fixes it
