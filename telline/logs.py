"""Structured logs: one JSON object a line, phone numbers masked, the RQ job id on job lines.

Masking happens in the formatters, on the whole line as written — message, every extra field
(whatever its type), traceback and stack — so a number slipped into a line by any library (or
by us, by mistake), in any encoding, is masked before it is written. Terminal escape codes go
the same way: werkzeug and RQ colour their lines for a terminal, and a log line is read by a
log shipper or in a pager.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from typing import IO

from telline.config import LogFormat
from telline.phone import mask_numbers_in

# Attributes every LogRecord has; anything else was passed with extra= and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


# ESC [ … final byte (colours, cursor), ESC ] … BEL or ESC \ (window titles), ESC + one byte.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


# A calendar feed's token is its only key (telline.scheduling.calendar_feeds): werkzeug's and
# Flask's lines name the path.
_CALENDAR_TOKEN = re.compile(r"(/calendar/)[^/\s\"'?]+(\.ics)")


def mask_secrets_in(text: str) -> str:
    """Phone numbers, and the tokens of calendar URLs, masked."""
    return mask_numbers_in(_CALENDAR_TOKEN.sub(r"\1•••\2", text))


def without_escapes(text: str) -> str:
    return _ESCAPES.sub("", text)


class TagJob(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = _current_job_id()
        return True


def _current_job_id() -> str | None:
    try:
        from rq import get_current_job
        job = get_current_job()
    except Exception:  # outside a worker, or no connection: not a job line
        return None
    return job.id if job else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": without_escapes(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                out[key] = without_escapes(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exception"] = without_escapes(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # Masking the line, not each value, keeps a field's name with its value ("to": "44…"), which is
        # how a number written without its "+" is recognised. telline keeps numbers as E.164 strings,
        # never as JSON numbers, so what is replaced is always inside a string: the line stays JSON.
        return mask_secrets_in(json.dumps(out, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(job)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        job_id = getattr(record, "job_id", None)  # set by TagJob
        record.job = f" [job {job_id}]" if job_id else ""
        return mask_secrets_in(without_escapes(super().format(record)))  # the traceback too


_HANDLER_NAME = "telline"


def configure(fmt: LogFormat = "json", level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Install telline's handler on the root logger (once; later calls replace it)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == _HANDLER_NAME:
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(TagJob())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # RQ's CLI (`rq worker -w telline.worker.TellineWorker`) gives its logger handlers of its own before
    # telline's app exists, and stops it propagating: those lines would skip the masking. Ours only.
    rq_logger = logging.getLogger("rq.worker")
    rq_logger.handlers.clear()
    rq_logger.propagate = True
    # The twilio client logs every request's headers and parameters at INFO: a dozen lines a text;
    # Alembic a dozen lines a migration run (plugins, context, each step): `db upgrade` says it in one.
    for chatty in ("twilio.http_client", "alembic"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(level)))
