"""Without Twilio: no credentials (a laptop's `telline run`), Twilio unreachable, or Twilio asking
to retry. Each is said plainly in one log line per attempt — no traceback storm — and the row
says what became of the text. Jobs run in the real RQ worker."""

from __future__ import annotations

import io
import json
import socket

import pytest

from telline import logs
from telline.cli import cli
from telline.config import Settings
from telline.sms.outbound import send_text
from tests.sms.conftest import PUBLIC_URL, run_jobs, scheduled_count

ANA = "+447911123456"


@pytest.fixture
def log_lines():
    """Every line telline's log handler writes during the test, parsed."""
    out = io.StringIO()
    logs.configure("json", "INFO", stream=out)
    yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    logs.configure("json", "INFO")


def ask(session, line, key="k1"):
    msg = send_text(session, line=line, to=ANA, body="Meeting tonight at 7pm.", idempotency_key=key)
    session.commit()
    return msg


def about(lines, message_id):
    return [line for line in lines if line.get("message_id") == message_id]


def no_tracebacks(lines):
    return not [line for line in lines if "exception" in line or "Traceback" in line["message"]]


def retried_once(app, session, line, log_lines):
    """A text through the real worker that must be tried again: RQ holds its retry, and the
    attempt is said in one warning line, with no traceback anywhere. Returns (row, that line)."""
    msg = ask(session, line)
    run_jobs(app)
    session.refresh(msg)
    assert msg.status == "retrying" and scheduled_count() == 1
    lines = log_lines()
    assert no_tracebacks(lines), [line for line in lines if "exception" in line or "Traceback" in line["message"]]
    [said] = [line for line in about(lines, msg.id) if line["level"] == "warning"]
    return msg, said


class TestNoCredentials:
    @pytest.fixture
    def settings_overrides(self):
        """No Twilio account and no stand-in, as `telline run` has on a laptop: the development account SID
        (the auth token stays a real-looking one: on PostgreSQL the development token is refused at start)."""
        return {"twilio_account_sid": Settings.DEV_ACCOUNT_SID, "twilio_api_base_url": None,
                "public_url": PUBLIC_URL}

    def test_a_text_is_refused_once_saying_why_and_nothing_is_sent(self, app, session, group, line, log_lines):
        msg = ask(session, line)
        run_jobs(app, scheduled=True)
        session.refresh(msg)
        assert msg.status == "refused" and msg.attempts == 1
        assert msg.error_message.startswith("not sent: Twilio is not configured")
        assert scheduled_count() == 0  # not retried: nothing will change until someone configures it
        lines = log_lines()
        assert [line["message"] for line in about(lines, msg.id)] == ["text not sent"]
        assert about(lines, msg.id)[0]["reason"] == msg.error_message
        assert no_tracebacks(lines)

    def test_the_worker_says_so_once_at_start(self, app, runner):
        r = runner.invoke(cli, ["worker", "--burst", "--simple"])
        assert r.exit_code == 0, r.output
        [said] = [line for line in r.stderr.splitlines() if "Twilio" in line]
        assert said.startswith("telline: warning: Twilio is not configured")
        assert "TWILIO_ACCOUNT_SID" in said and "TWILIO_API_BASE_URL" in said


class TestUnreachable:
    @pytest.fixture
    def settings_overrides(self):
        with socket.socket() as s:  # a port nothing listens on: every connection is refused
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        return {"twilio_api_base_url": f"http://127.0.0.1:{closed}", "public_url": PUBLIC_URL}

    def test_a_twilio_that_cannot_be_reached_is_said_so_in_one_line_and_retried(self, app, session, group, line,
                                                                                log_lines):
        _, said = retried_once(app, session, line, log_lines)
        assert said["message"] == "could not reach Twilio; will retry"
        assert said["error"] == "could not reach Twilio: the connection was refused or failed"


def test_twilio_asking_to_retry_is_one_line_too(app, session, group, line, standin, log_lines):
    standin.fail(503, None, "down for a moment", times=1)
    msg, said = retried_once(app, session, line, log_lines)
    assert (said["message"], said["status"]) == ("Twilio asked to retry", 503)
    run_jobs(app, scheduled=True)
    session.refresh(msg)
    assert msg.status == "queued"
