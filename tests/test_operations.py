"""/healthz for load balancers and /metrics for Prometheus."""

import datetime as dt

import pytest

from telline import create_app
from telline.job_queues import queues
from tests import sample_jobs
from tests.conftest import make_settings
from tests.signing import post_signed


@pytest.mark.parametrize("path", ["/readyz", "/healthz"])
def test_ready_when_database_and_redis_answer(client, path):
    r = client.get(path)
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}


@pytest.mark.parametrize("path", ["/readyz", "/healthz"])
def test_still_ready_when_redis_is_down_callers_are_seated_from_the_database(database_url, path):
    app = create_app(make_settings(database_url, "redis://127.0.0.1:1/0"))
    r = app.test_client().get(path)
    assert r.status_code == 200  # a load balancer keeps sending calls to this node
    assert r.get_json() == {"status": "degraded", "database": "ok", "redis": "unavailable"}
    assert app.test_client().get("/livez").status_code == 200
    app.extensions["telline.db"].dispose()


def test_not_ready_but_alive_when_the_database_is_unreachable(redis_url, tmp_path):
    missing_dir = tmp_path / "no" / "such" / "dir"
    app = create_app(make_settings(f"sqlite:///{missing_dir}/x.sqlite3", redis_url))
    (missing_dir / "x.sqlite3").parent.rmdir()  # the factory made it; take it away again
    for path in ("/readyz", "/healthz"):
        r = app.test_client().get(path)
        assert r.status_code == 503
        assert r.get_json() == {"status": "unavailable", "database": "unavailable", "redis": "ok"}
    r = app.test_client().get("/livez")  # restarting this process would not bring the database back
    assert (r.status_code, r.get_json()) == (200, {"status": "ok"})


def test_metrics_show_requests_webhook_outcomes_and_queue_depth(client):
    client.get("/healthz")
    client.post("/twilio/sms", data={"MessageSid": "SM" + "0" * 32})  # unsigned: forbidden
    post_signed(client, "/twilio/sms", {"MessageSid": "SM" + "1" * 32, "From": "+33612345678",
                                         "To": "+15005550006", "Body": "hi"})
    queues()["bulk"].enqueue(sample_jobs.append_to_list, "k", "v")
    queues()["bulk"].enqueue(sample_jobs.append_to_list, "k", "v")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.content_type.startswith("text/plain")
    text = r.get_data(as_text=True)
    assert 'telline_http_requests_total{endpoint="health.healthz",method="GET",status="200"}' in text
    assert 'telline_webhooks_total{outcome="forbidden",route="sms"}' in text
    assert 'telline_webhooks_total{outcome="inbox",route="sms"}' in text
    assert 'telline_queue_depth{queue="bulk"} 2.0' in text
    assert 'telline_queue_depth{queue="urgent"} 0.0' in text
    assert "telline_redis_up 1.0" in text
    assert "+33612345678" not in text


def test_metrics_count_the_work_not_done_yet(client, session):
    from telline.models import Task, utcnow
    for minutes_ago in (0, 10):  # one just asked for, one the sweeper should long have got going
        session.add(Task(func="telline.sms.delivery:deliver", args=[1], queue="default",
                         due_at=utcnow() - dt.timedelta(minutes=minutes_ago)))
    session.commit()
    text = client.get("/metrics").get_data(as_text=True)
    assert "telline_tasks_pending 2.0" in text and "telline_tasks_overdue 1.0" in text


def test_metrics_still_answer_when_redis_is_down(database_url):
    app = create_app(make_settings(database_url, "redis://127.0.0.1:1/0"))
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert "telline_redis_up 0.0" in text
    app.extensions["telline.db"].dispose()


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/metrics"])
def test_operations_routes_need_no_signature(client, path):
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_escape_codes_in_any_log_line(standin, fmt):
    """The stand-in's request lines come from werkzeug, which colours status codes for a
    terminal; a log line is read by a log shipper or a person's pager, not a terminal."""
    import io
    import logging

    import requests

    from telline import logs
    out = io.StringIO()
    logs.configure(fmt, "INFO", stream=out)
    try:
        requests.get(f"{standin.url}/no/such/page", timeout=5)
        logging.getLogger("telline.test").warning("\x1b[31mred\x1b[0m and \x1b]0;a title\x07 text")
    finally:
        logs.configure(fmt, "INFO")
    written = out.getvalue()
    assert "404" in written and "red and  text" in written, written
    assert "\x1b" not in written and "\\u001b" not in written and "\x07" not in written, written
