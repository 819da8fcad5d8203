#!/usr/bin/env python3
"""Run telline, or its tests, on a machine that has only Python 3.11+.

    python3 deploy/local.py run     # web + workers + cron on SQLite, Redis found or started
    python3 deploy/local.py test    # the whole test suite (what CI runs)

Standard library only: it creates .venv beside the repo (once, and again when
pyproject.toml changes), installs telline with its test extras there, then
hands over to `telline run` or pytest. Extra arguments are passed through.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("TELLINE_VENV") or REPO / ".venv")
STAMP = VENV / ".telline-installed"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def wanted_stamp() -> str:
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_environment() -> Path:
    # Run by whatever python3 the machine has: an older one must get this message, not a syntax error later.
    if sys.version_info < (3, 11):  # noqa: UP036
        sys.exit(f"telline needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = venv_python()
    if python.exists() and STAMP.exists() and STAMP.read_text() == wanted_stamp():
        return python
    if not python.exists():
        print(f"local: creating {VENV}", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except subprocess.CalledProcessError:
            sys.exit("local: this Python cannot create virtual environments with pip "
                     "(on Debian/Ubuntu: apt install python3-venv)")
    print("local: installing telline and its test tools into .venv (first run only)", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
                    "--editable", f"{REPO}[local,test]"], check=True)
    STAMP.write_text(wanted_stamp())
    return python


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("run", "test"):
        sys.exit("usage: python3 deploy/local.py run|test [arguments for telline run or pytest]")
    python = str(ensure_environment())
    os.chdir(REPO)
    if argv[0] == "run":
        os.execv(python, [python, "-m", "telline", "run", *argv[1:]])
    ensure_chromium()
    pytest = [python, "-m", "pytest"]
    if chosen_by_caller(argv[1:]):
        os.execv(python, [*pytest, *argv[1:]])
    # The whole suite on up to three cores (pytest-xdist): most slow tests wait on workers, servers
    # and timeouts, so two processes take little more than half the time of one. Three at most:
    # each takes its own Redis database (tests/conftest.py). Tests that measure time (marked
    # `timing`) run after, alone: next to two other busy test processes they measure the machine.
    cores = str(min(os.cpu_count() or 1, 3))
    shared = subprocess.run([*pytest, "-n", cores, "-m", "not timing", *argv[1:]], check=False)
    alone = subprocess.run([*pytest, "-n", "0", "-m", "timing", *argv[1:]], check=False)
    no_tests_collected = 5  # pytest's exit code when nothing is marked (yet) or selected
    sys.exit(shared.returncode or (0 if alone.returncode == no_tests_collected else alone.returncode))


CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> None:
    """The console's browser tests drive Debian's Chromium (tests/browser). As root on Debian or
    Ubuntu, install it once; anywhere else say how, and those tests skip (or fail under CI)."""
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0 or not Path("/usr/bin/apt-get").exists():
        print("local: no /usr/bin/chromium, so the browser tests will be skipped "
              "(on Debian/Ubuntu: apt-get install chromium)", flush=True)
        return
    print("local: installing Debian's chromium for the browser tests (first run only)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False)


def chosen_by_caller(pytest_args: list[str]) -> bool:
    """A chosen few tests, or a caller who says how to run them, run as asked, in one pass."""
    return any(a.startswith(("-n", "--numprocesses", "-k", "-m", "--pdb")) or a.endswith(".py") or "::" in a
               for a in pytest_args)


if __name__ == "__main__":
    main(sys.argv[1:])
