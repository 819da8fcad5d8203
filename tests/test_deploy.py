"""Every way deploy/ runs telline runs the urgent lane: a worker for urgent work alone."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
URGENT_LANE = ["telline", "worker", "--simple", "--queues", "urgent"]
ALL_QUEUES = ["telline", "worker", "--simple"]


def test_the_procfile_runs_the_urgent_lane_beside_the_other_workers():
    processes = dict(line.split(": ", 1) for line in (DEPLOY / "Procfile").read_text().splitlines()
                     if line and not line.startswith("#"))
    assert shlex.split(processes["urgent"]) == URGENT_LANE
    assert shlex.split(processes["worker"]) == ALL_QUEUES


def test_compose_runs_the_urgent_lane_after_migrations_and_redis():
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    commands = {name: s.get("command") for name, s in services.items()}
    assert commands["urgent-worker"] == URGENT_LANE and commands["worker"] == ALL_QUEUES
    for name in ("urgent-worker", "worker"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"},
                                                "redis": {"condition": "service_healthy"}}
        assert services[name]["environment"] == services["web"]["environment"]  # same settings as the rest


def test_kubernetes_runs_an_urgent_lane_deployment():
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "telline.yaml").read_text()))
    deployments = {d["metadata"]["name"]: d for d in documents if d and d["kind"] == "Deployment"}
    urgent = deployments["telline-urgent-worker"]["spec"]
    assert urgent["replicas"] >= 1
    (container,) = urgent["template"]["spec"]["containers"]
    assert container["command"] == URGENT_LANE
    assert container["envFrom"] == [{"secretRef": {"name": "telline-env"}}]
    assert urgent["selector"]["matchLabels"] == urgent["template"]["metadata"]["labels"]


def test_systemd_runs_the_urgent_lane_as_an_instance_of_the_worker_template():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "systemd" / "telline-worker@.service")
    assert shlex.split(unit["Service"]["ExecStart"])[1:] == ["worker", "--simple"]
    drop_in = configparser.ConfigParser(interpolation=None)
    drop_in.read(DEPLOY / "systemd" / "telline-worker@urgent.service.d" / "urgent-lane.conf")
    assert drop_in["Service"]["Environment"] == "TELLINE_WORKER_QUEUES=urgent"
    assert "telline-worker@urgent" in (DEPLOY / "README.md").read_text()  # and the README enables it


def test_a_worker_takes_its_queues_from_telline_worker_queues(tmp_path, redis_url):
    """What the systemd drop-in relies on: TELLINE_WORKER_QUEUES=urgent makes `telline worker` the
    urgent lane."""
    from telline import migrate
    url = f"sqlite:///{tmp_path / 'lane.sqlite3'}"
    migrate.upgrade(url)
    env = dict(os.environ, TELLINE_DATABASE_URL=url, TELLINE_REDIS_URL=redis_url, TELLINE_LOG_FORMAT="text",
               TELLINE_WORKER_QUEUES="urgent", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "telline", "worker", "--simple", "--burst"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert re.findall(r"Listening on (.*)\.\.\.", done.stderr) == ["urgent"], done.stderr


def test_a_worker_refuses_a_queue_telline_does_not_have(tmp_path, redis_url):
    """A typo in TELLINE_WORKER_QUEUES (or --queues) stops the worker with a sentence, not a worker
    that listens on a queue nothing is ever sent to."""
    from telline import migrate
    url = f"sqlite:///{tmp_path / 'lane.sqlite3'}"
    migrate.upgrade(url)
    env = dict(os.environ, TELLINE_DATABASE_URL=url, TELLINE_REDIS_URL=redis_url, TELLINE_LOG_FORMAT="text",
               TELLINE_WORKER_QUEUES="urgnet", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "telline", "worker", "--simple", "--burst"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "unknown queue 'urgnet'" in done.stderr and "Traceback" not in done.stderr, done.stderr
