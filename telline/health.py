"""GET /healthz for load balancers: 200 when the database and Redis answer, 503 when either does not."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, jsonify

from telline import db
from telline.queue import queues

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    checks = {"database": _check(lambda: db.session().execute(sa.text("SELECT 1")).scalar_one()),
              "redis": _check(lambda: queues().connection.ping())}
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", **checks), 200 if healthy else 503


def _check(probe) -> str:
    try:
        probe()
        return "ok"
    except Exception as exc:  # any failure means "not ready"; the log says which
        log.warning("health check failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return "unavailable"
