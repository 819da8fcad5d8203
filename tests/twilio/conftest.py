"""Fixtures for the Twilio edge's tests."""

import threading

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@pytest.fixture
def receiver():
    """A tiny web server standing for telline: records what it is sent, answers 200."""
    received, arrived = [], threading.Condition()

    def app(environ, start_response):
        request = Request(environ)
        with arrived:
            received.append((request.url, request.form.to_dict(), request.headers.get("X-Twilio-Signature")))
            arrived.notify_all()
        return Response("ok")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url, server.received, server.arrived = f"http://127.0.0.1:{server.port}", received, arrived
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)
