"""Prometheus metrics: requests, webhook outcomes, queue depth (read from Redis at scrape time).

Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR to an empty
directory so every worker's counts are added up (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from telline.job_queues import JobQueues

REQUESTS = Counter("telline_http_requests_total", "HTTP requests answered",
                   ["method", "endpoint", "status"])
LATENCY = Histogram("telline_http_request_seconds", "Time to answer an HTTP request", ["endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15))
WEBHOOKS = Counter("telline_webhooks_total", "Twilio webhooks by outcome", ["route", "outcome"])

bp = Blueprint("metrics", __name__)


class _QueueDepth:
    def __init__(self, queues: JobQueues):
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("telline_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        up = GaugeMetricFamily("telline_redis_up", "1 if Redis answered this scrape")
        try:
            for name, n in self.queues.depths().items():
                depth.add_metric([name], n)
            up.add_metric([], 1)
        except Exception:  # Redis down: say so rather than fail the scrape
            up.add_metric([], 0)
        yield depth
        yield up


class _Tasks:
    """Work that must happen and is not done yet (telline.tasks), read from the database."""

    def collect(self) -> Iterator[Metric]:
        from telline import db, tasks
        from telline.models import utcnow
        try:
            session = db.session()
            counts = tasks.pending(session), tasks.overdue(session, utcnow())
        except Exception:  # the database down: /readyz says so; the scrape still answers
            return
        pending = GaugeMetricFamily("telline_tasks_pending", "Tasks (texts, dial-outs, moderation…) not done yet")
        overdue = GaugeMetricFamily("telline_tasks_overdue", "Tasks due over 5 minutes ago and not done")
        pending.add_metric([], counts[0])
        overdue.add_metric([], counts[1])
        yield pending
        yield overdue


@bp.get("/metrics")
def scrape() -> Response:
    from telline.job_queues import queues
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    live = CollectorRegistry()
    live.register(_QueueDepth(queues()))
    live.register(_Tasks())
    return Response(generate_latest(registry) + generate_latest(live), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.before_request
    def _start_timer() -> None:
        g._telline_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        endpoint = request.endpoint or "unmatched"  # endpoint names, never raw paths (no ids in labels)
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        started = g.get("_telline_started")
        if started is not None:
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response


