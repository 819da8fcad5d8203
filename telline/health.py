"""Health probes: liveness and readiness, kept apart so that a fault behind a web node never makes
an orchestrator restart it, nor a load balancer drop one that can still seat callers.

  GET /livez   liveness: the process answers HTTP. Checks nothing behind it (restarting a node
               does not bring its database back). For Docker's HEALTHCHECK and a Kubernetes
               livenessProbe.
  GET /readyz  readiness: this node can seat callers, which needs the database and not Redis.
               200 with "ok", or "degraded" when Redis does not answer (callers are still seated;
               see the README for what waits); 503 "unavailable" when the database does not
               answer within PROBE_SECONDS. For a load balancer and a Kubernetes readinessProbe.
  GET /healthz the same as /readyz (the path load balancers ask by default).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify

from telline import db, db_deadline, request_redis

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

Check = Literal["ok", "unavailable"]
Readiness = Literal["ok", "degraded", "unavailable"]

# Within a probe's usual timeout (Docker's and Kubernetes' defaults are 5 s and 1 s; set the
# probe's to 3 s, see deploy/): a database that takes longer is as good as down for a webhook.
PROBE_SECONDS = 2.0


@bp.get("/livez")
def livez() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    with db_deadline.limit(PROBE_SECONDS):
        database = _check("database", lambda: db.session().execute(sa.text("SELECT 1")).scalar_one())
    redis = _check("redis", lambda: request_redis.connection().ping())
    status: Readiness = "unavailable" if database != "ok" else "ok" if redis == "ok" else "degraded"
    return jsonify(status=status, database=database, redis=redis), 503 if status == "unavailable" else 200


# The same probe under the path load balancers ask by default (its own endpoint name in metrics).
bp.add_url_rule("/healthz", "healthz", readyz)


def _check(name: str, probe: Callable[[], object]) -> Check:
    try:
        probe()
        return "ok"
    except Exception as exc:  # any failure means "not answering"; the log says which
        log.warning("health check failed", extra={"dependency": name, "error": type(exc).__name__})
        return "unavailable"
