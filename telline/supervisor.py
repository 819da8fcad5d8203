"""`telline run`: web + worker + cron in one terminal, on the embedded defaults.

Checks the web port is free, applies migrations, finds or starts Redis, then runs the
same three commands a deployment runs as separate services (see deploy/Procfile),
prefixing each line of output with its name. It says "running" once the web answers.
A process that stops is started again, as a deployment's supervisor would (systemd's
Restart=, compose's restart:): a worker exits when Redis goes away under a job, and the
work it held is only safe if a worker comes back. One that keeps stopping (RESTARTS
times within RESTART_WINDOW seconds) stops everything.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque

from telline import localredis, migrate
from telline.config import Settings

log = logging.getLogger(__name__)

RESTARTS, RESTART_WINDOW = 5, 60.0


def commands(host: str, port: int, web_workers: int) -> dict[str, list[str]]:
    me = [sys.executable, "-m", "telline"]
    return {
        "web": me + ["web", "--bind", f"{host}:{port}", "--workers", str(web_workers)],
        # The urgent lane: a worker for urgent work alone (replies to a member, crisis replies,
        # moderation), which a broadcast or reminders can never fill; the other drains all queues,
        # urgent first.
        "urgent-worker": me + ["worker", "--simple", "--queues", "urgent"],
        "worker": me + ["worker", "--simple"],
        "cron": me + ["cron"],
    }


def run_all(settings: Settings, host: str, port: int, web_workers: int = 2) -> int:
    refusal = cannot_listen(host, port)
    if refusal:  # before anything starts: gunicorn would retry for seconds, then leave the rest running
        print(f"telline: {refusal}", file=sys.stderr, flush=True)
        return 1
    migrate.upgrade(settings.database_url)
    log.info("database ready", extra={"database": settings.database_url.split("://")[0]})

    redis_url, private = localredis.ensure(settings.redis_url)
    if private:
        print(f"telline: no Redis at {settings.redis_url}; started a private one at {redis_url} "
              "(it stops with telline)", flush=True)
    env = dict(os.environ, TELLINE_REDIS_URL=redis_url, TELLINE_DATABASE_URL=settings.database_url)
    env.setdefault("TELLINE_LOG_FORMAT", "text")  # a person reads this terminal, not a log shipper
    metrics_dir = tempfile.mkdtemp(prefix="telline-metrics-")  # /metrics adds up the web workers
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)

    children = [Child(name, argv, env) for name, argv in commands(host, port, web_workers).items()]
    selector = selectors.DefaultSelector()
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for child in children:
            child.start(selector)
        health = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/healthz"
        announced = False
        while not stopping:
            if not announced and answers(health):
                print(f"telline: web on http://{host}:{port} (health: /healthz), workers (one for urgent work "
                      "alone) and cron running; "
                      "Ctrl-C stops all", flush=True)
                announced = True
            for key, _ in selector.select(timeout=0.5):
                key.data.forward(selector)
            for child in children:
                if child.stopped():
                    child.release(selector)
                    if not child.may_restart():
                        print(f"telline: {child.name} keeps stopping (exit code {child.exit_code}); "
                              "stopping the rest", flush=True)
                        return 1
                    print(f"telline: {child.name} stopped (exit code {child.exit_code}); starting it again",
                          flush=True)
                    child.start(selector)
        return 0
    finally:
        for child in children:
            child.signal(signal.SIGTERM)
        for child in children:
            child.wait_or_kill(10)
        if private:
            private.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)


class Child:
    """One of the processes `telline run` supervises, and its output, forwarded line by line."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]):
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.pending = b""  # the start of a line not yet ended
        self.starts: deque[float] = deque(maxlen=RESTARTS)

    def start(self, selector: selectors.BaseSelector) -> None:
        self.starts.append(time.monotonic())
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # its own group: our Ctrl-C is ours to pass on
        assert self.proc.stdout is not None  # stdout=PIPE
        selector.register(self.proc.stdout, selectors.EVENT_READ, self)

    def forward(self, selector: selectors.BaseSelector) -> None:
        """Write every whole line the process has written so far (a read may hold several, or half)."""
        assert self.proc is not None and self.proc.stdout is not None
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:  # it closed its output: it is ending
            selector.unregister(self.proc.stdout)
            self.proc.stdout.close()
            data = b"\n" if self.pending else b""
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            sys.stdout.write(f"{self.name:>6} | {line.decode(errors='replace')}\n")
        sys.stdout.flush()

    def stopped(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def release(self, selector: selectors.BaseSelector) -> None:
        """After it stopped: what it still had to say, then its pipe closed (a process it left behind
        may hold the pipe open: its later words are lost, not the supervisor's loop)."""
        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout
        with selectors.DefaultSelector() as own:
            own.register(out, selectors.EVENT_READ)
            while not out.closed and own.select(timeout=0.1):
                self.forward(selector)  # at the end of its output: unregistered and closed
        if not out.closed:
            selector.unregister(out)
            out.close()

    @property
    def exit_code(self) -> int | None:
        return self.proc.returncode if self.proc else None

    def may_restart(self) -> bool:
        return len(self.starts) < RESTARTS or time.monotonic() - self.starts[0] > RESTART_WINDOW

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)

    def wait_or_kill(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def cannot_listen(host: str, port: int) -> str | None:
    """Why the web could not listen on host:port (one sentence), or None when it can."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            probe.bind(address)
    except OSError as exc:
        if isinstance(exc, socket.gaierror):
            return f"{host} is not an address this machine has ({exc.strerror})"
        if exc.errno == errno.EADDRINUSE:
            return f"{host}:{port} is already in use (another telline run?): stop it, or choose --port"
        return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def answers(url: str) -> bool:
    """The web answers (200, or 503 while a dependency is down: it still answers)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
