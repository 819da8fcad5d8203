import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from telline import create_app
from telline.config import ConfigError, load


def test_defaults_work_on_a_fresh_machine(tmp_path):
    s = load(env={}, instance_path=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path / 'telline.sqlite3'}"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.public_url is None and s.twilio_api_base_url is None


def test_environment_names_from_the_design_are_read():
    env = {"TELLINE_DATABASE_URL": "postgres://u:p@db/telline", "TELLINE_REDIS_URL": "redis://r:6379/2",
           "TELLINE_PUBLIC_URL": "https://t.example.org/", "TELLINE_SECRET_KEY": "s" * 32,
           "TWILIO_ACCOUNT_SID": "AC" + "f" * 32, "TWILIO_AUTH_TOKEN": "t" * 32,
           "TWILIO_API_BASE_URL": "http://127.0.0.1:8099/"}
    s = load(env=env)
    assert s.database_url == "postgresql+psycopg://u:p@db/telline"
    assert s.public_url == "https://t.example.org"
    assert s.twilio_api_base_url == "http://127.0.0.1:8099"
    assert (s.redis_url, s.secret_key, s.twilio_auth_token) == ("redis://r:6379/2", "s" * 32, "t" * 32)


@pytest.mark.parametrize("name,value,fragment", [
    ("TELLINE_DATABASE_URL", "mysql://x", "TELLINE_DATABASE_URL"),
    ("TELLINE_REDIS_URL", "http://r", "TELLINE_REDIS_URL"),
    ("TELLINE_PUBLIC_URL", "telline.example.org", "TELLINE_PUBLIC_URL"),
    ("TELLINE_PUBLIC_URL", "https://x.org/?a=1", "no query string"),
    ("TWILIO_ACCOUNT_SID", "ACshort", "TWILIO_ACCOUNT_SID"),
    ("TWILIO_API_BASE_URL", "localhost:8099", "TWILIO_API_BASE_URL"),
    ("TELLINE_PROXY_HOPS", "one", "TELLINE_PROXY_HOPS must be a whole number"),
    ("TELLINE_PROXY_HOPS", "-1", "at least 0"),
    ("TELLINE_MAX_BODY_BYTES", "10", "at least 1024"),
    ("TELLINE_LOG_FORMAT", "xml", "TELLINE_LOG_FORMAT"),
    ("TELLINE_LOG_LEVEL", "loud", "TELLINE_LOG_LEVEL"),
    ("TELLINE_SEND_THREADS", "many", "TELLINE_SEND_THREADS must be a whole number"),
    ("TELLINE_SEND_THREADS", "0", "TELLINE_SEND_THREADS must be at least 1"),
    ("TELLINE_SEND_THREADS", "1000", "TELLINE_SEND_THREADS must be at most 256"),
])
def test_a_bad_value_names_the_variable(name, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load(env={name: value})


def test_the_factory_refuses_bad_settings(monkeypatch):
    monkeypatch.setenv("TELLINE_DATABASE_URL", "oracle://nope")
    with pytest.raises(ConfigError, match="TELLINE_DATABASE_URL"):
        create_app()


def test_unknown_override_is_an_error():
    with pytest.raises(ConfigError, match="unknown setting"):
        load(env={}, databse_url="sqlite://")


def test_nothing_connects_at_creation(tmp_path):
    # Unreachable Redis and a database file that does not exist yet: building the app must not care.
    app = create_app({"redis_url": "redis://127.0.0.1:1/0",
                      "database_url": f"sqlite:///{tmp_path}/later.sqlite3", "testing": True})
    assert app.config["TELLINE"].redis_url.endswith(":1/0")
    assert not (tmp_path / "later.sqlite3").exists()


# --- development secrets refused outside a laptop ----------------------------------------------------
REAL_SECRET, REAL_TOKEN = "k" * 48, "0123456789abcdef0123456789abcdef"
# Each says "this is not a laptop": real members may reach it, so a public secret would let anyone in.
NOT_A_LAPTOP = {
    "https public URL": ({"TELLINE_PUBLIC_URL": "https://telline.example.org"}, "TELLINE_PUBLIC_URL is https"),
    "PostgreSQL": ({"TELLINE_DATABASE_URL": "postgresql://u:p@db/telline"}, "the database is PostgreSQL"),
    "declared": ({"TELLINE_ENV": "production"}, "TELLINE_ENV is production"),
}
WEAK = {"unset": None, "empty": "", "too short": "short-but-set"}


@pytest.mark.parametrize("trigger", NOT_A_LAPTOP)
@pytest.mark.parametrize("variable,default", [("TELLINE_SECRET_KEY", "dev-only-not-secret"),
                                              ("TWILIO_AUTH_TOKEN", "dev-auth-token")])
@pytest.mark.parametrize("weakness", [*WEAK, "the development default"])
def test_a_deployment_refuses_development_or_weak_secrets(trigger, variable, default, weakness):
    env = {"TELLINE_SECRET_KEY": REAL_SECRET, "TWILIO_AUTH_TOKEN": REAL_TOKEN, **NOT_A_LAPTOP[trigger][0]}
    value = default if weakness == "the development default" else WEAK[weakness]
    if value is None:
        del env[variable]
    else:
        env[variable] = value
    with pytest.raises(ConfigError) as refused:
        load(env=env)
    message = str(refused.value)
    assert variable in message and NOT_A_LAPTOP[trigger][1] in message
    assert ("too short" if weakness == "too short" else "unset or the development default") in message
    assert message.count(".") <= 1 and "\n" not in message  # one sentence


def test_both_weak_secrets_are_named_in_one_sentence():
    with pytest.raises(ConfigError, match="TELLINE_SECRET_KEY is unset or the development default and "
                                          "TWILIO_AUTH_TOKEN is unset or the development default"):
        load(env={"TELLINE_ENV": "production"})


@pytest.mark.parametrize("trigger", NOT_A_LAPTOP)
def test_a_deployment_with_real_secrets_starts(trigger):
    s = load(env={"TELLINE_SECRET_KEY": REAL_SECRET, "TWILIO_AUTH_TOKEN": REAL_TOKEN, **NOT_A_LAPTOP[trigger][0]})
    assert (s.secret_key, s.twilio_auth_token) == (REAL_SECRET, REAL_TOKEN)


@pytest.mark.parametrize("env", [{}, {"TELLINE_PUBLIC_URL": "http://192.168.1.20:5000"},
                                 {"TELLINE_DATABASE_URL": "sqlite:////tmp/demo.sqlite3"}])
def test_a_laptop_starts_on_the_development_defaults(env):
    s = load(env=env)
    assert (s.secret_key, s.twilio_auth_token) == ("dev-only-not-secret", "dev-auth-token")


def test_telline_env_takes_only_production():
    with pytest.raises(ConfigError, match="TELLINE_ENV must be 'production' or unset"):
        load(env={"TELLINE_ENV": "prod"})


def test_the_factory_refuses_development_secrets_behind_a_public_url(monkeypatch):
    """gunicorn's `telline:create_app()` and RQ's own worker build the app this way."""
    for name in ("TELLINE_SECRET_KEY", "TWILIO_AUTH_TOKEN", "TELLINE_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TELLINE_PUBLIC_URL", "https://telline.example.org")
    with pytest.raises(ConfigError, match="TELLINE_SECRET_KEY"):
        create_app()


REFUSAL = ("telline: configuration error: TELLINE_SECRET_KEY is unset or the development default and "
           "TWILIO_AUTH_TOKEN is unset or the development default, but this is not a laptop "
           "(TELLINE_PUBLIC_URL is https)")


def _deployment_env(tmp_path, redis_url) -> dict:
    """A deployment that forgot its secrets: an https public URL, nothing else set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELLINE_", "TWILIO_"))}
    env.update(TELLINE_PUBLIC_URL="https://telline.example.org", TELLINE_REDIS_URL=redis_url,
               TELLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}", PYTHONPATH=str(Path(__file__).parents[1]))
    return env


def _run(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run a server command; one that starts anyway is stopped (its whole process group) and fails the test."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{argv[2:]} started on development secrets: {err[-2000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("command", [["web", "--bind", "127.0.0.1:{port}", "--workers", "1"], ["worker", "--burst"],
                                     ["cron"]])
def test_telline_web_worker_and_cron_refuse_development_secrets(tmp_path, redis_url, command):
    argv = [sys.executable, "-m", "telline", *(part.format(port=_free_port()) for part in command)]
    done = _run(argv, _deployment_env(tmp_path, redis_url))
    assert done.returncode == 2, done.stderr[-2000:]
    assert REFUSAL in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_rqs_own_worker_refuses_development_secrets(tmp_path, redis_url):
    """`rq worker -w telline.worker.TellineWorker` builds the app before it takes a job."""
    rq = str(Path(sys.executable).with_name("rq"))
    done = _run([rq, "worker", "-w", "telline.worker.TellineWorker", "--burst", "--url", redis_url],
                _deployment_env(tmp_path, redis_url))
    assert done.returncode != 0
    assert REFUSAL.removeprefix("telline: configuration error: ") in done.stderr


# --- the deploy files ----------------------------------------------------------------------------------
DEPLOY = Path(__file__).parents[1] / "deploy"


def _env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile= and compose's .env read them (comments skipped)."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_the_systemd_env_example_as_shipped_is_refused_and_starts_once_filled_in():
    env = _env_file(DEPLOY / "systemd" / "telline.env.example")
    assert env["TWILIO_AUTH_TOKEN"] and env["TELLINE_SECRET_KEY"], "the example ships an empty secret"
    with pytest.raises(ConfigError, match="TELLINE_SECRET_KEY is too short .* and TWILIO_AUTH_TOKEN is too short"):
        load(env=env)
    filled = {**env, "TELLINE_SECRET_KEY": REAL_SECRET, "TWILIO_AUTH_TOKEN": REAL_TOKEN,
              "TWILIO_ACCOUNT_SID": "AC" + "f" * 32}
    assert load(env=filled).deployed_because == "TELLINE_ENV is production"


def test_the_image_and_compose_declare_a_deployment():
    assert "ENV TELLINE_ENV=production" in (DEPLOY / "Dockerfile").read_text()
    assert "TELLINE_ENV: production" in (DEPLOY / "compose.yaml").read_text()
    compose = (DEPLOY / "compose.yaml").read_text()
    for name in ("TELLINE_SECRET_KEY", "TWILIO_AUTH_TOKEN"):  # compose itself stops on an empty value
        assert f"{name}: ${{{name}:?" in compose
