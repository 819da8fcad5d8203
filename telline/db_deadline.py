"""A deadline on the database work of one HTTP request, enforced from outside the connection.

Why from outside: a PostgreSQL server that is stopped (SIGSTOP, a frozen VM, a wedged disk)
while its kernel still runs acknowledges every packet, so TCP keepalives and
`tcp_user_timeout` never fire, and `statement_timeout` needs the server to run. psycopg then
waits for the answer for ever (measured: a `SELECT 1` still waiting after 60 s, keepalives and
tcp_user_timeout set), and Twilio, after 15 s, plays "an application error has occurred" to a
caller who may be in distress. libpq's `connect_timeout` covers new connections only.

How: a request sets its deadline (`limit()`); each PostgreSQL connection it checks out of a
pool is registered with that deadline (`Watchdog.arm`) and forgotten when it goes back
(`Watchdog.disarm`). One watchdog thread shuts down (shutdown(2)) the socket of a connection
still out when its deadline passes: the blocked call fails at once with psycopg's "server
closed the connection unexpectedly", SQLAlchemy invalidates that connection, and the webhook
answers its apology. Jobs and commands set no deadline (RQ's job timeout bounds jobs).
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)

# The most one HTTP request may spend waiting on the database. Twilio gives a webhook 15 s in
# all; this leaves room for a fresh connection's connect_timeout (telline.db) and the network.
REQUEST_SECONDS = 4.0

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("telline_db_deadline", default=None)


def current() -> float | None:
    """This request's deadline (time.monotonic()), None outside a request."""
    return _deadline.get()


def start_request(seconds: float = REQUEST_SECONDS) -> contextvars.Token[float | None]:
    return _deadline.set(time.monotonic() + seconds)


def end_request(token: contextvars.Token[float | None]) -> None:
    _deadline.reset(token)


@contextlib.contextmanager
def limit(seconds: float) -> Iterator[None]:
    """Tighten the current deadline to at most `seconds` from now (a health probe answers sooner)."""
    now_plus = time.monotonic() + seconds
    earlier = _deadline.get()
    token = _deadline.set(now_plus if earlier is None else min(earlier, now_plus))
    try:
        yield
    finally:
        _deadline.reset(token)


class Watchdog:
    """Shuts down registered sockets whose deadline has passed. One per process, one thread."""

    def __init__(self) -> None:
        self._tokens = itertools.count(1)
        self._reset()
        # A forked child (a gunicorn worker, RQ's work horse) has no watchdog thread, and the
        # parent's lock may have been held at the fork: start afresh.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._armed: dict[int, tuple[int, int]] = {}  # token → (fd, inode of the socket)
        self._due: list[tuple[float, int]] = []  # heap of (deadline, token); stale tokens skipped
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, fd: int, deadline: float) -> int:
        token = next(self._tokens)
        inode = os.fstat(fd).st_ino
        with self._wakeup:
            self._ensure_thread()
            self._armed[token] = (fd, inode)
            heapq.heappush(self._due, (deadline, token))
            if self._due[0][1] == token:  # earlier than what the thread waits for
                self._wakeup.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._wakeup:
            self._armed.pop(token, None)

    def armed(self) -> int:
        with self._wakeup:
            return len(self._armed)

    def _ensure_thread(self) -> None:
        if self._thread is None:  # started by the first request that needs it
            self._thread = threading.Thread(target=self._run, name="telline-db-deadline", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with self._wakeup:
            while True:
                while self._due and self._due[0][1] not in self._armed:
                    heapq.heappop(self._due)  # disarmed in time
                if not self._due:
                    self._wakeup.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._wakeup.wait(wait)
                    continue
                _, token = heapq.heappop(self._due)
                fd, inode = self._armed.pop(token)
                # Under the lock: disarm() (called before a connection is closed) cannot run in
                # between, so the fd is still this socket; the inode check covers a connection
                # that psycopg closed by itself.
                _shut_down(fd, inode)


def _shut_down(fd: int, inode: int) -> None:
    try:
        if os.fstat(fd).st_ino != inode:
            return
        sock = socket.socket(fileno=fd)
    except OSError:
        return  # already closed
    try:
        sock.shutdown(socket.SHUT_RDWR)
        log.warning("the database did not answer within the request's deadline: connection cut")
    except OSError:
        pass
    finally:
        sock.detach()  # the fd stays psycopg's to close


WATCHDOG = Watchdog()
