"""Nothing telline logs carries a member's number, in any encoding.

The whole phone meeting of test_whole_meeting.py, then an SMS scenario, with telline's own root
handler (telline.logs) at DEBUG in JSON and in text — the twilio client then logs every request's
parameters — and a send whose check with Twilio cannot connect, so that RQ logs requests' error with
the Messages list's URL (To=%2B…) in its traceback. Everything written is scanned for each member's
digits, the national ones included.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re

import phonenumbers
import pytest
import sqlalchemy as sa

from telline.models import Message, utcnow
from telline.sms.broadcast import start_broadcast
from telline.sms.outbound import send_text
from tests.sms.conftest import run_jobs
from tests.test_logs import log_output  # noqa: F401 — the fixture
from tests.voice.conftest import World, fresh
from tests.voice.test_whole_meeting import (
    EARLY,
    HOST,
    INTRUDER,
    LATE,
    NAMED,
    play_a_whole_meeting,
)

JOINER, QUITTER = "+447911123777", "+447911123778"  # join by text; opt out by text
MEMBERS = [*NAMED, *EARLY, *LATE, HOST, INTRUDER, JOINER, QUITTER]


@contextlib.contextmanager
def every_logger_at_debug():
    """telline.logs keeps the twilio client at WARNING (a dozen lines a text): here it speaks too."""
    names = ("twilio.http_client", "urllib3")
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def digits_of(number: str) -> list[str]:
    """A number's digits as any encoding shows them (+44…, %2B44…, \\u002b44…, 44…), and the national
    ones (7911…, 07911…): a masked number keeps its last four only."""
    return [number.removeprefix("+"), str(phonenumbers.parse(number).national_number)]


def without_separators(text: str) -> str:
    """'+44 7911 123 456', '+44%207911…' and '(0)7911-123.456' read as the digits they are."""
    return re.sub(r"(?<=\d)(?:[\s\-().]|%20)+(?=\d)", "", text)


def texting(world: World) -> None:
    """JOIN and YES, a message for the coordinators (answered), a STOP, a broadcast."""
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


def a_send_that_cannot_reach_twilio(world: World, number: str) -> None:
    """A text whose request went out but whose answer was dropped (and so was the check that followed);
    later, when its retry looks for it in Twilio's Messages list again, Twilio cannot be reached at all."""
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
def test_nothing_logged_in_a_whole_meeting_and_sms_scenario_carries_a_members_number(
        in_process, log_output, fmt):  # noqa: F811 — log_output is the imported fixture
    world, out = in_process, log_output(fmt)
    with every_logger_at_debug():
        play_a_whole_meeting(world)  # codes, a lockout, text controls, the host's moderation (REST API)
        texting(world)
        a_send_that_cannot_reach_twilio(world, JOINER)

    logged = out.getvalue()
    assert "Max retries exceeded with url" in logged and "To=%2B44" in logged  # the traceback was logged…
    assert "Query Params: {" in logged  # …and the twilio client's requests, with their To and From
    scanned = without_separators(logged)
    leaks = [(number, digits) for number in MEMBERS for digits in digits_of(number) if digits in scanned]
    assert not leaks, leaks
    if fmt == "json":
        assert all(json.loads(line) for line in logged.splitlines())
