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
           "TELLINE_PUBLIC_URL": "https://t.example.org/", "TELLINE_SECRET_KEY": "s",
           "TWILIO_ACCOUNT_SID": "AC" + "f" * 32, "TWILIO_AUTH_TOKEN": "tok",
           "TWILIO_API_BASE_URL": "http://127.0.0.1:8099/"}
    s = load(env=env)
    assert s.database_url == "postgresql+psycopg://u:p@db/telline"
    assert s.public_url == "https://t.example.org"
    assert s.twilio_api_base_url == "http://127.0.0.1:8099"
    assert (s.redis_url, s.secret_key, s.twilio_auth_token) == ("redis://r:6379/2", "s", "tok")


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
