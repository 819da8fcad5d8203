"""telline.logs: whatever writes a line, in either format, no phone number is in it in any encoding."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re

import phonenumbers
import pytest
import requests
import sqlalchemy as sa

from telline import logs
from telline.models import Message, utcnow
from telline.sms.broadcast import start_broadcast
from telline.sms.outbound import send_text
from tests.sms.conftest import run_jobs
from tests.voice.conftest import group, line, settings_overrides  # noqa: F401 — fixtures
from tests.voice.test_whole_meeting import (EARLY, HOST, INTRUDER, LATE, NAMED, fresh, in_process,  # noqa: F401
                                            play_a_whole_meeting)

ANA = "+447911123456"


@pytest.fixture
def log_output():
    """What telline's root handler writes, per format; the handler is put back as the suite's apps have it."""
    streams: dict[str, io.StringIO] = {}

    def configure(fmt: str) -> io.StringIO:
        streams[fmt] = io.StringIO()
        logs.configure(fmt, "DEBUG", stream=streams[fmt])
        return streams[fmt]

    yield configure
    logs.configure("json", "INFO")


def failed_request() -> requests.ConnectionError:
    """What requests raises when Twilio cannot be reached: the query, URL-encoded, is in its message."""
    try:
        requests.get("http://127.0.0.1:9/2010-04-01/Accounts/AC1/Messages.json",
                     params={"To": ANA, "From": "+15005550006"}, timeout=2)
    except requests.ConnectionError as exc:
        return exc
    raise AssertionError("port 9 answered")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_traceback_with_a_failed_requests_url_is_masked(log_output, fmt):
    out = log_output(fmt)
    exc = failed_request()
    assert "To=%2B447911123456" in str(exc)
    try:
        raise RuntimeError("send failed") from exc
    except RuntimeError:
        logging.getLogger("rq.worker").exception("job failed")
    written = out.getvalue()
    assert "Max retries exceeded with url" in written
    assert "447911123456" not in written and "7911123456" not in written
    assert "To=%2B44••••••3456" in written


def test_every_field_of_a_json_line_is_masked_and_the_line_stays_json(log_output):
    out = log_output("json")
    logging.getLogger("rq.worker").info("job %s", "deliver", extra={
        "arguments": [ANA, 3], "kwargs": {"to": ANA.removeprefix("+")}, "to": ANA}, stack_info=True)
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["arguments"] == ["+44••••••3456", 3] and record["kwargs"] == {"to": "44••••••3456"}
    assert record["to"] == "+44••••••3456" and "stack" in record
    assert "7911123456" not in line


def test_rqs_own_handlers_give_way_to_telline(log_output):
    """`rq worker` sets up its handlers (not masking, not propagating) before telline builds the app."""
    from rq.logutils import setup_loghandlers
    rq_logger = logging.getLogger("rq.worker")
    saved = (list(rq_logger.handlers), rq_logger.propagate)
    root = logging.getLogger()
    root_handlers = list(root.handlers)
    try:
        root.handlers.clear()  # as when `rq worker` starts: nothing configured yet
        setup_loghandlers("INFO")
        root.handlers[:] = [h for h in root_handlers if h.get_name() != "telline"]  # pytest's capture stays
        assert rq_logger.handlers and rq_logger.propagate is False
        out = log_output("text")
        rq_logger.error("job failed: To=%s", ANA)
        assert "To=+44••••••3456" in out.getvalue()
        assert not rq_logger.handlers and rq_logger.propagate is True
    finally:
        rq_logger.handlers[:], rq_logger.propagate = saved
        root.handlers[:] = root_handlers


# --- a whole meeting and an SMS scenario: nothing logged carries a member's number ----------------------
JOINER, QUITTER = "+447911123777", "+447911123778"  # join by text; opt out by text


def every_encoding_of(number: str) -> list[str]:
    """The digits as they would show in any encoding (+44…, %2B44…, \\u002b44…, 44…, the national 7911… or
    07911…): a masked number keeps its last four only."""
    national = str(phonenumbers.parse(number).national_number)
    return [number.removeprefix("+"), national]


def without_separators(text: str) -> str:
    """'+44 7911 123 456', '+44%207911…' and '(0)7911-123.456' read as the digits they are."""
    return re.sub(r"(?<=\d)(?:[\s\-().]|%20)+(?=\d)", "", text)


def a_send_that_cannot_reach_twilio(world, number: str) -> None:
    """A text whose request went out but whose answer was dropped (and so was the check that followed);
    later, when the job looks for it in Twilio's Messages list again, Twilio cannot be reached at all:
    requests' error, with the list's URL and its To=%2B…, is in the traceback RQ logs."""
    session, standin = world.session, world.standin
    standin.drop(method="POST", path_suffix="/Messages.json")
    standin.drop(method="GET", path_suffix="/Messages.json")
    msg = send_text(session, line=world.line, to=number, body="The meeting is at 7 tonight", idempotency_key="lp-1")
    session.commit()
    world.run_jobs()  # outcome unknown, and the check dropped too: the job fails, RQ retries it later
    session.execute(sa.update(Message).where(Message.id == msg.id)
                    .values(updated_at=utcnow() - dt.timedelta(minutes=5)))  # later: no attempt in flight
    session.commit()
    standin.stop()
    try:
        run_jobs(world.app, scheduled=True, rounds=1)  # the retry cannot connect to check
    finally:
        standin.start()
    run_jobs(world.app, scheduled=True)  # Twilio is back: the text it had is adopted, not sent twice
    assert [m["body"] for m in standin.messages_sent() if m["to"] == number].count(msg.body) == 1
    fresh(session)
    assert session.get(Message, msg.id).twilio_sid is not None


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_nothing_logged_in_a_whole_meeting_and_sms_scenario_carries_a_members_number(in_process, log_output,
                                                                                     fmt):
    world = in_process
    out = log_output(fmt)
    saved_levels = {name: logging.getLogger(name).level for name in ("twilio.http_client", "urllib3")}
    for name in saved_levels:  # every logger at DEBUG: the twilio client then logs each request's parameters
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        # A phone meeting: callers with the code and by caller ID, wrong codes and a lockout, texts to mute
        # and raise a hand, the host's moderation (mute all, end) through Twilio's REST API.
        play_a_whole_meeting(world)
        # Texts: JOIN and YES, a message for the coordinators (answered), a broadcast, a STOP.
        world.group.text_code = "CARE42"
        world.session.commit()
        joiner, quitter = world.twilio.phone(JOINER), world.twilio.phone(QUITTER)
        joiner.text("JOIN CARE42")
        world.run_jobs()
        joiner.text("YES")
        joiner.text("I feel low tonight")
        quitter.text("STOP")
        world.run_jobs()
        start_broadcast(world.session, group_id=world.group.id, body="Meeting moved to 8pm", idempotency_key="b1")
        world.session.commit()
        world.run_jobs()
        assert joiner.texts()[-1] == "Meeting moved to 8pm" and len(quitter.texts()) == 1
        a_send_that_cannot_reach_twilio(world, JOINER)
    finally:
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)

    logged = out.getvalue()
    assert "Max retries exceeded with url" in logged and "To=%2B44" in logged  # the traceback was logged…
    assert "PAYLOAD" in logged or "Query Params" in logged  # …and the twilio client's requests
    scanned = without_separators(logged)
    members = [*NAMED, *EARLY, *LATE, HOST, INTRUDER, JOINER, QUITTER]
    leaks = [(number, digits) for number in members for digits in every_encoding_of(number) if digits in scanned]
    assert not leaks, leaks
    if fmt == "json":
        assert all(json.loads(line) for line in logged.splitlines())
