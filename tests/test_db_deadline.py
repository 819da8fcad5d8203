"""The request deadline's watchdog: a socket still out at its deadline is cut, no other is touched."""

from __future__ import annotations

import socket
import time

import pytest
import sqlalchemy as sa

from telline import create_app, db, db_deadline
from tests.conftest import make_settings


def test_a_socket_still_waiting_at_its_deadline_is_cut():
    watchdog = db_deadline.Watchdog()
    ours, server = socket.socketpair()
    with ours, server:
        watchdog.arm(ours.fileno(), time.monotonic() + 0.2)
        started = time.monotonic()
        assert ours.recv(10) == b""  # the server never answers: the cut ends the wait
        assert 0.15 < time.monotonic() - started < 2
        assert watchdog.armed() == 0


def test_a_socket_given_back_in_time_is_left_alone():
    watchdog = db_deadline.Watchdog()
    ours, server = socket.socketpair()
    with ours, server:
        watchdog.disarm(watchdog.arm(ours.fileno(), time.monotonic() + 0.1))
        time.sleep(0.3)
        server.sendall(b"still here")
        assert ours.recv(10) == b"still here"


def test_a_closed_sockets_number_given_to_another_is_not_cut():
    watchdog = db_deadline.Watchdog()
    first, _peer = socket.socketpair()
    fd = first.fileno()
    watchdog.arm(fd, time.monotonic() + 0.2)
    first.close()  # closed without being given back (psycopg closing a broken connection)
    _peer.close()
    reused, server = socket.socketpair()
    with reused, server:
        if reused.fileno() != fd:
            pytest.skip("the system did not reuse the descriptor")
        time.sleep(0.4)
        server.sendall(b"mine")
        assert reused.recv(10) == b"mine"


def test_only_requests_have_a_deadline(database_url, redis_url):
    app = create_app(make_settings(database_url, redis_url))
    assert db_deadline.current() is None
    seen = []
    with app.test_request_context():
        app.preprocess_request()
        seen.append(db_deadline.current())
        with db_deadline.limit(1.0):
            seen.append(db_deadline.current())
        app.do_teardown_request()
    assert db_deadline.current() is None
    assert seen[0] - time.monotonic() == pytest.approx(db_deadline.REQUEST_SECONDS, abs=0.5)
    assert seen[1] - time.monotonic() == pytest.approx(1.0, abs=0.5)
    with app.app_context():  # a job or a command: no deadline, and the database works as ever
        assert db.session().execute(sa.text("SELECT 1")).scalar_one() == 1
    app.extensions["telline.db"].dispose()
