"""Prism, Stoplight's mock server for OpenAPI specs, for contract tests.

Installed on first use with npm into <venv>/prism (inside the virtualenv: gitignored,
kept between runs). A test that needs it is skipped, with the reason, when Node.js or
npm is missing or the install fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

VERSION = "5.14.2"  # supports Node 20
HOME = Path(sys.prefix) / "prism"
STARTUP_TIMEOUT = 90  # seconds; Twilio's 2010 spec is large
# Twilio's OpenAPI spec of the 2010 API: beside the repository (X/main has X/shared), or where the env says.
TWILIO_SPEC = Path(os.environ.get("TELLINE_TWILIO_OPENAPI") or Path(__file__).resolve().parents[1].parent
                   / "shared" / "twilio-openapi" / "twilio_api_v2010.json")


def executable() -> Path:
    """The prism command, installed first if need be."""
    if not shutil.which("node"):
        pytest.skip("Prism needs Node.js 20: `node` is not on PATH")
    command = HOME / "node_modules" / ".bin" / "prism"
    if command.exists() and _installed_version() == VERSION:
        return command
    npm = shutil.which("npm")
    if not npm:
        pytest.skip("Prism is installed with npm: `npm` is not on PATH")
    done = subprocess.run([npm, "install", "--prefix", str(HOME), "--no-audit", "--no-fund",
                           f"@stoplight/prism-cli@{VERSION}"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not command.exists():
        pytest.skip(f"npm could not install @stoplight/prism-cli@{VERSION}: {done.stderr.strip()[-800:]}")
    return command


def _installed_version() -> str | None:
    try:
        return json.loads((HOME / "node_modules/@stoplight/prism-cli/package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


@contextlib.contextmanager
def mock_server(spec: Path, log_path: Path):
    """`prism mock spec` on a free local port, stopped afterwards; yields its base URL."""
    port = _free_port()
    command = [str(executable()), "mock", str(spec), "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "w") as log, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                      start_new_session=True) as process:
        try:
            _wait_for(process, port, log_path)
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(process)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(process: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prism exited ({process.returncode}):\n{log_path.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    pytest.fail(f"prism did not listen on port {port} within {STARTUP_TIMEOUT}s:\n{log_path.read_text()[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    # Prism runs in a session of its own (start_new_session): signal its whole group.
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
