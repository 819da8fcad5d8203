"""Structured logs: one JSON object a line, phone numbers masked, the RQ job id on job lines.

Masking happens in a filter on the handler, so a number slipped into a message
by any library (or by us, by mistake) is masked before it is written. Terminal escape
codes go the same way: werkzeug and RQ colour their lines for a terminal, and a log line
is read by a log shipper or in a pager.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys

from telline.phone import mask_numbers_in

# Attributes every LogRecord has; anything else was passed with extra= and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


# ESC [ … final byte (colours, cursor), ESC ] … BEL or ESC \ (window titles), ESC + one byte.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


def without_escapes(text: str) -> str:
    return _ESCAPES.sub("", text)


class MaskAndTag(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_numbers_in(without_escapes(record.getMessage()))
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, mask_numbers_in(without_escapes(value)))
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
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                out[key] = value
        if record.exc_info:
            out["exception"] = mask_numbers_in(without_escapes(self.formatException(record.exc_info)))
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s%(job)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.job = f" [job {record.job_id}]" if getattr(record, "job_id", None) else ""
        return without_escapes(super().format(record))  # the traceback too


_HANDLER_NAME = "telline"


def configure(fmt: str = "json", level: str = "INFO", stream=None) -> None:
    """Install telline's handler on the root logger (once; later calls replace it)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == _HANDLER_NAME:
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(MaskAndTag())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # The twilio client logs every request's headers and parameters at INFO: a dozen lines a text;
    # Alembic a dozen lines a migration run (plugins, context, each step): `db upgrade` says it in one.
    for chatty in ("twilio.http_client", "alembic"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(level)))
