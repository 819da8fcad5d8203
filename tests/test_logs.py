"""telline.logs: whatever writes a line, in either format, no phone number is in it in any encoding."""

from __future__ import annotations

import io
import json
import logging

import pytest
import requests

from telline import logs

ANA = "+447911123456"


@pytest.fixture
def log_output():
    """log_output(fmt): telline's root handler, at DEBUG, writing to the stream returned; put back after."""
    def configure(fmt: str) -> io.StringIO:
        stream = io.StringIO()
        logs.configure(fmt, "DEBUG", stream=stream)
        return stream

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
    [written] = out.getvalue().splitlines()
    record = json.loads(written)
    assert record["arguments"] == ["+44••••••3456", 3] and record["kwargs"] == {"to": "44••••••3456"}
    assert record["to"] == "+44••••••3456" and "stack" in record
    assert "7911123456" not in written


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

