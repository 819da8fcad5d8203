"""A PostgreSQL server of the test's own, to stop, freeze and start again (the machine's is shared).

initdb in a fresh directory with the server binaries of the machine (/usr/lib/postgresql/*/bin,
or `pg_config --bindir`), on a free loopback port. As root (CI containers), the server runs as
the `postgres` user: PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import psycopg
import pytest

from tests.processes import process_tree


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and os.path.exists(os.path.join(out.stdout.strip(), "initdb")):
            return out.stdout.strip()
    return None


class PrivatePostgres:
    def __init__(self) -> None:
        bindir = _bindir()
        if bindir is None or not os.path.isdir("/proc"):
            pytest.skip("no PostgreSQL server binaries (initdb) on this machine, or no /proc")
        self.bindir = bindir
        self.workdir = tempfile.mkdtemp(prefix="telline-pg-")
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
            self.as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen | None = None
        subprocess.run([*self.as_user, f"{bindir}/initdb", "-D", f"{self.workdir}/data", "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*self.as_user, f"{self.bindir}/postgres", "-D", f"{self.workdir}/data", "-p", str(self.port),
             "-k", self.workdir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres "
                                "connect_timeout=2").close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError("the private PostgreSQL server did not start")

    def new_database(self) -> str:
        """The URL of a new, empty database on this server."""
        name = f"telline_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def _family(self) -> list[int]:
        """The postmaster and its backends (each a process group of its own)."""
        assert self.process is not None
        return process_tree(self.process.pid)

    def freeze(self) -> None:
        """SIGSTOP the whole server: its kernel still accepts connections and acknowledges data."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        for pid in self._family():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # a backend that ended meanwhile

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.process.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
