"""One settings object, read from the environment in the app factory only.

Every name telline reads is listed here, with its default and its check, so an
operator finds the whole surface in one place and a bad value fails at start-up
with a sentence that says which variable and why, not later inside a webhook.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

LogFormat = Literal["json", "text"]


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    public_url: str | None
    secret_key: str
    twilio_account_sid: str
    twilio_auth_token: str
    twilio_api_base_url: str | None
    # Secret of a Twilio webhook SharedKey, for requests signed with HMAC-SHA256
    # (header X-Twilio-Webhooks-Signature-Settings); the auth token signs the rest.
    twilio_webhook_signing_key: str | None
    # Number of reverse proxies in front of the app whose X-Forwarded-Proto/-Host
    # we trust (Werkzeug ProxyFix). 0 = none; ignored when public_url is set.
    proxy_hops: int
    max_body_bytes: int
    log_format: LogFormat
    log_level: str
    queue_prefix: str
    # Texts a worker has in flight at once (telline.sms.send_pool): Twilio answers a send in 0.1–0.3 s,
    # so a line of N texts/s needs about N × 0.3 across its workers (see the README, Throughput).
    send_threads: int = 32
    # A console session ends after this many minutes without a request (telline.admin.sessions).
    console_idle_minutes: int = 30
    # TELLINE_ENV=production: treat this instance as a deployment even without the other signs of one
    # (an https public URL, PostgreSQL) — see deployed_because.
    declared_production: bool = False
    testing: bool = False

    # Defaults that are only safe on a developer's machine; production must set them.
    DEV_SECRET = "dev-only-not-secret"
    DEV_ACCOUNT_SID = "AC" + "0" * 32
    DEV_AUTH_TOKEN = "dev-auth-token"

    @property
    def deployed_because(self) -> str | None:
        """Why this is not a laptop — members or Twilio may reach it — or None on a laptop (SQLite, no
        https URL). A deployment must not run on the public development secrets: anyone could sign a
        webhook with the development auth token."""
        if self.declared_production:
            return "TELLINE_ENV is production"
        if self.public_url and self.public_url.startswith("https://"):
            return "TELLINE_PUBLIC_URL is https"
        if self.database_url.startswith("postgresql"):
            return "the database is PostgreSQL"
        return None


_PREFIXES = ("sqlite", "postgresql")
# Twilio's auth tokens are 32 characters; a session secret shorter than that is guessable.
MIN_SECRET_LENGTH = 32


def load(env: Mapping[str, str] | None = None, instance_path: str | os.PathLike[str] = "instance",
         **overrides: object) -> Settings:
    """Build Settings from `env` (default os.environ) plus explicit overrides.

    Overrides use the field names (database_url=..., testing=True) and win over
    the environment; tests and the CLI pass them instead of mutating os.environ.
    """
    environ = os.environ if env is None else env

    def get(name: str, default: str | None = None) -> str | None:
        return environ.get(name) or default  # empty means unset

    values: dict[str, object] = {
        "database_url": get("TELLINE_DATABASE_URL")
        or "sqlite:///" + str(Path(instance_path, "telline.sqlite3").resolve()),
        "redis_url": get("TELLINE_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "public_url": get("TELLINE_PUBLIC_URL"),
        "secret_key": get("TELLINE_SECRET_KEY", Settings.DEV_SECRET),
        "twilio_account_sid": get("TWILIO_ACCOUNT_SID", Settings.DEV_ACCOUNT_SID),
        "twilio_auth_token": get("TWILIO_AUTH_TOKEN", Settings.DEV_AUTH_TOKEN),
        "twilio_api_base_url": get("TWILIO_API_BASE_URL"),
        "twilio_webhook_signing_key": get("TWILIO_WEBHOOK_SIGNING_KEY"),
        "proxy_hops": get("TELLINE_PROXY_HOPS", "0"),
        "max_body_bytes": get("TELLINE_MAX_BODY_BYTES", str(64 * 1024)),
        "log_format": get("TELLINE_LOG_FORMAT", "json"),
        "log_level": get("TELLINE_LOG_LEVEL", "INFO"),
        "queue_prefix": get("TELLINE_QUEUE_PREFIX", ""),
        "send_threads": get("TELLINE_SEND_THREADS", "32"),
        "console_idle_minutes": get("TELLINE_CONSOLE_IDLE_MINUTES", "30"),
        "declared_production": get("TELLINE_ENV", ""),
        "testing": False,
    }
    values.update(overrides)
    return _validate(values)


def _validate(v: dict[str, Any]) -> Settings:
    db = str(v["database_url"])
    if db.startswith("postgres://"):  # Heroku-style URL: SQLAlchemy wants the full dialect name
        db = "postgresql://" + db[len("postgres://"):]
    if db.startswith("postgresql://"):  # we ship psycopg 3, not psycopg2
        db = "postgresql+psycopg://" + db[len("postgresql://"):]
    if not db.startswith(_PREFIXES):
        raise ConfigError(f"TELLINE_DATABASE_URL must be a sqlite:/// or postgresql:// URL, got {db.split(':')[0]!r}")
    v["database_url"] = db

    if urlsplit(str(v["redis_url"])).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("TELLINE_REDIS_URL must look like redis://host:6379/0")

    if v["public_url"]:
        parts = urlsplit(str(v["public_url"]))
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigError("TELLINE_PUBLIC_URL must be an absolute http(s) URL such as "
                              "https://telline.example.org (no query string)")
        v["public_url"] = str(v["public_url"]).rstrip("/")

    if v["twilio_api_base_url"]:
        parts = urlsplit(str(v["twilio_api_base_url"]))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("TWILIO_API_BASE_URL must be an absolute URL such as http://127.0.0.1:8099")
        v["twilio_api_base_url"] = str(v["twilio_api_base_url"]).rstrip("/")

    sid = str(v["twilio_account_sid"])
    if not (sid.startswith("AC") and len(sid) == 34):
        raise ConfigError("TWILIO_ACCOUNT_SID must be 'AC' followed by 32 characters")

    for name, env_name, low, high in (("proxy_hops", "TELLINE_PROXY_HOPS", 0, None),
                                      ("max_body_bytes", "TELLINE_MAX_BODY_BYTES", 1024, None),
                                      ("send_threads", "TELLINE_SEND_THREADS", 1, 256),
                                      ("console_idle_minutes", "TELLINE_CONSOLE_IDLE_MINUTES", 1, 24 * 60)):
        try:
            v[name] = int(v[name])
        except (TypeError, ValueError):
            raise ConfigError(f"{env_name} must be a whole number, got {v[name]!r}") from None
        if v[name] < low:
            raise ConfigError(f"{env_name} must be at least {low}")
        if high is not None and v[name] > high:
            raise ConfigError(f"{env_name} must be at most {high}")

    if v["log_format"] not in ("json", "text"):
        raise ConfigError("TELLINE_LOG_FORMAT must be 'json' or 'text'")
    v["log_level"] = str(v["log_level"]).upper()
    if v["log_level"] not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("TELLINE_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")

    if v["declared_production"] not in ("", "production", True, False):
        raise ConfigError("TELLINE_ENV must be 'production' or unset")
    v["declared_production"] = v["declared_production"] in ("production", True)

    unknown = set(v) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    settings = Settings(**v)
    _refuse_weak_secrets(settings)
    return settings


def _refuse_weak_secrets(s: Settings) -> None:
    """The one rule for every entry point (telline web/worker/cron, gunicorn's create_app(), RQ's own
    worker): a deployment starts only with real secrets; a laptop may use the development ones."""
    reason = s.deployed_because
    if reason is None:
        return
    weak = [f"{name} {problem}" for name, value, default in (
        ("TELLINE_SECRET_KEY", s.secret_key, Settings.DEV_SECRET),
        ("TWILIO_AUTH_TOKEN", s.twilio_auth_token, Settings.DEV_AUTH_TOKEN))
        if (problem := _weakness(value, default))]
    if weak:
        raise ConfigError(f"{' and '.join(weak)}, but this is not a laptop ({reason}): set each to its real "
                          f"secret (at least {MIN_SECRET_LENGTH} characters; see the README, Configuration)")


def _weakness(value: str, development_default: str) -> str | None:
    if not value or value == development_default:
        return "is unset or the development default"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is too short (under {MIN_SECRET_LENGTH} characters)"
    return None


def production_warnings(s: Settings) -> list[str]:
    """What an operator should fix before real members use this instance."""
    out = []
    if s.secret_key == Settings.DEV_SECRET:
        out.append("TELLINE_SECRET_KEY is the development default")
    if s.twilio_auth_token == Settings.DEV_AUTH_TOKEN:
        out.append("TWILIO_AUTH_TOKEN is the development default: webhooks are signed with a public token")
    if s.database_url.startswith("sqlite"):
        out.append("the database is SQLite: fine for one machine and a trial, use PostgreSQL for a service")
    if not s.public_url:
        out.append("TELLINE_PUBLIC_URL is unset: callback URLs are built from each request's host")
    return out
