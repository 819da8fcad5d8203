"""A private redis-server that a test can kill and start again, empty, on the same port — as a
server without persistence comes back after a crash, where its clients expect it."""

from __future__ import annotations

import os
import signal

from telline import localredis


class RestartableRedis:
    def __init__(self):
        self.server = localredis.start_private()
        self.port, self.url = self.server.port, self.server.url

    def crash(self) -> None:
        """kill -9: no goodbye to its clients, nothing saved."""
        if self.server.process.poll() is None:
            os.kill(self.server.process.pid, signal.SIGKILL)
            self.server.process.wait()
        self.server.stop()

    def stop(self) -> None:
        self.server.stop()

    def start_empty(self) -> None:
        self.server = localredis.start_private(port=self.port)
