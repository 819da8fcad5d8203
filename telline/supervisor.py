"""`telline run`: web + worker + cron in one terminal, on the embedded defaults.

Checks the web port is free, applies migrations, finds or starts Redis, then runs the
same three commands a deployment runs as separate services (see deploy/Procfile),
prefixing each line of output with its name. It says "running" once the web answers;
if one process stops, all stop.
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
import urllib.error
import urllib.request
from typing import IO, cast

from telline import localredis, migrate
from telline.config import Settings

log = logging.getLogger(__name__)


def commands(host: str, port: int, web_workers: int) -> dict[str, list[str]]:
    me = [sys.executable, "-m", "telline"]
    return {
        "web": me + ["web", "--bind", f"{host}:{port}", "--workers", str(web_workers)],
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

    children: dict[str, subprocess.Popen] = {}
    selector = selectors.DefaultSelector()
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for name, argv in commands(host, port, web_workers).items():
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            children[name] = proc
            selector.register(cast(IO[bytes], proc.stdout), selectors.EVENT_READ, name)  # stdout=PIPE
        health = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/healthz"
        announced = False
        while not stopping:
            if not announced and answers(health):
                print(f"telline: web on http://{host}:{port} (health: /healthz), worker and cron running; "
                      "Ctrl-C stops all", flush=True)
                announced = True
            for key, _ in selector.select(timeout=0.5):
                line = cast(IO[bytes], key.fileobj).readline()  # a child's stdout, registered above
                if line:
                    sys.stdout.write(f"{key.data:>6} | {line.decode(errors='replace')}")
                    sys.stdout.flush()
                else:
                    selector.unregister(key.fileobj)
            dead = [n for n, p in children.items() if p.poll() is not None]
            if dead:
                print(f"telline: {', '.join(dead)} stopped{'' if announced else ' before the web answered'}; "
                      "stopping the rest", flush=True)
                return 1
        return 0
    finally:
        for proc in children.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in children.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if private:
            private.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)


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
