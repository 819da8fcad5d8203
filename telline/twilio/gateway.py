"""The one place telline talks to Twilio's REST API (the official client).

Built in the app factory. With TWILIO_API_BASE_URL set, every request that the
client would send to https://*.twilio.com goes to that base URL instead — over
real HTTP — so tests and the demo exercise the same code as production.

Errors come out as two kinds, because the caller must treat them differently:
- TwilioError: Twilio answered and refused (status + Twilio error code). Nothing
  was created.
- OutcomeUnknown: the request may have reached Twilio but no answer came back
  (read timeout, connection dropped). A create may have happened: reconcile
  before retrying (creating a message is not idempotent).
A connection that could not even be opened is a TwilioError with status 0: it
is safe to retry.

With no Twilio account configured (the development defaults and no stand-in: a laptop's
`telline run`) nothing is sent anywhere: every call raises TwilioNotConfigured before
any request, rather than asking the real api.twilio.com with a fake account.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import requests
import urllib3
from flask import Flask, current_app
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from telline.config import Settings

if TYPE_CHECKING:
    # twilio-python ships no type information (no py.typed): to mypy these names are Any. They
    # say what each method gives back.
    from twilio.http.response import Response
    from twilio.rest.api.v2010.account.call import CallInstance
    from twilio.rest.api.v2010.account.conference import ConferenceInstance
    from twilio.rest.api.v2010.account.conference.participant import ParticipantInstance
    from twilio.rest.api.v2010.account.message import MessageInstance

log = logging.getLogger(__name__)
T = TypeVar("T")
EXTENSION = "telline.gateway"

# Twilio error codes that say "slow down / try again later", not "this is wrong".
RETRYABLE_CODES = frozenset({20429, 21611, 30001})
_TWILIO_HOST = re.compile(r"^https://[A-Za-z0-9.-]+\.twilio\.com")


class TwilioError(Exception):
    def __init__(self, status: int, code: int | None, message: str):
        super().__init__(f"Twilio {status} code={code}: {message}")
        self.status, self.code, self.message = status, code, message

    @property
    def retryable(self) -> bool:
        return self.status in (0, 429) or self.status >= 500 or self.code in RETRYABLE_CODES

    @property
    def unreachable(self) -> bool:
        """No answer from Twilio at all (DNS, refused, timeout), not Twilio's own "later"."""
        return self.status == 0


class TwilioNotConfigured(TwilioError):
    """No Twilio account to send with: nothing was, or will be, sent until one is configured."""

    def __init__(self, reason: str):
        super().__init__(0, None, reason)

    @property
    def retryable(self) -> bool:
        return False  # nothing changes until an operator sets the credentials and restarts


def not_configured(settings: Settings) -> str | None:
    """Why these settings must not talk to Twilio's real API, or None when they may."""
    if settings.twilio_api_base_url:
        return None  # a stand-in: whatever credentials it accepts will do
    defaults = [name for name, value, default in (
        ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid, settings.DEV_ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token, settings.DEV_AUTH_TOKEN)) if value in ("", default)]
    if not defaults:
        return None
    return (f"Twilio is not configured: {' and '.join(defaults)} "
            f"{'is the development default' if len(defaults) == 1 else 'are the development defaults'}"
            " and TWILIO_API_BASE_URL is unset")


class OutcomeUnknown(Exception):
    """The request was sent; whether Twilio acted on it is unknown."""


@dataclasses.dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str
    num_segments: int | None


class _BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio-python: no type information
    """The official HTTP client, with https://*.twilio.com swapped for a local base URL."""

    def __init__(self, base_url: str | None, timeout: float):
        super().__init__(pool_connections=True, timeout=timeout)
        self.base_url = base_url
        # Several worker threads may share one client: pool enough connections.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self.base_url:
            url = _TWILIO_HOST.sub(self.base_url, url)
        return super().request(method, url, *args, **kwargs)


class TwilioGateway:
    def __init__(self, account_sid: str, auth_token: str, api_base_url: str | None = None,
                 timeout: float = 10.0, not_configured: str | None = None):
        self.account_sid = account_sid
        self.api_base_url = api_base_url
        self.not_configured = not_configured  # why nothing may be sent (see not_configured()), or None
        self._settings = (account_sid, auth_token, api_base_url, timeout, not_configured)
        self.client = Client(account_sid, auth_token,
                             http_client=_BaseUrlHttpClient(api_base_url, timeout))
        # twilio-python imports its API modules on first use (~80 ms): do it now, in the
        # process that builds the app, not inside the first send — after a rate slot was booked,
        # and again in every forked work horse.
        self.client.api.v2010.account.messages  # noqa: B018 — the attribute access is the import

    def another(self) -> TwilioGateway:
        """A gateway of its own for another thread, to the same account: the official client keeps its
        last request and response on itself, and its HTTP session is not meant to be shared."""
        return TwilioGateway(*self._settings)

    # --- messages -------------------------------------------------------------
    def send_sms(self, *, from_: str, to: str, body: str, status_callback: str | None = None,
                 media_url: list[str] | None = None) -> SentMessage:
        kwargs: dict[str, Any] = {"from_": from_, "to": to, "body": body}
        if status_callback:
            kwargs["status_callback"] = status_callback
        if media_url:
            kwargs["media_url"] = media_url
        msg = self._call(self.client.messages.create, **kwargs)
        return SentMessage(msg.sid, msg.status, _int_or_none(msg.num_segments))

    def find_messages(self, *, to: str, from_: str, sent_after: dt.datetime | None = None,
                      limit: int = 50) -> list[MessageInstance]:
        """Messages Twilio has for this pair (newest first): used to reconcile unknown outcomes.

        Twilio filters DateSent by day and a queued message has no date_sent yet:
        callers pass a generous `sent_after` and match on date_created themselves.
        """
        kwargs: dict[str, Any] = {"to": to, "from_": from_, "limit": limit, "page_size": min(limit, 1000)}
        if sent_after is not None:
            if sent_after.tzinfo is None:
                raise ValueError("sent_after must be timezone-aware")
            # twilio-python formats the wall time and labels it Z: give it UTC.
            kwargs["date_sent_after"] = sent_after.astimezone(dt.UTC)
        messages: list[MessageInstance] = self._call(self.client.messages.list, read_only=True, **kwargs)
        return messages

    def fetch_message(self, sid: str) -> MessageInstance:
        return self._call(self.client.messages(sid).fetch, read_only=True)

    # --- calls and conferences ------------------------------------------------
    def create_call(self, *, from_: str, to: str, url: str, status_callback: str | None = None,
                    **options: Any) -> CallInstance:
        if status_callback:
            options.setdefault("status_callback", status_callback)
        return self._call(self.client.calls.create, from_=from_, to=to, url=url, **options)

    def update_call(self, sid: str, **fields: Any) -> CallInstance:
        return self._call(self.client.calls(sid).update, **fields)

    def update_conference(self, conference_sid: str, **fields: Any) -> ConferenceInstance:
        """fields: status="completed" (end it), announce_url=…, announce_method=…"""
        return self._call(self.client.conferences(conference_sid).update, **fields)

    def list_participants(self, conference_sid: str) -> list[ParticipantInstance]:
        participants: list[ParticipantInstance] = self._call(
            self.client.conferences(conference_sid).participants.list, read_only=True)
        return participants

    def add_participant(self, conference_sid: str, *, from_: str, to: str, **options: Any) -> ParticipantInstance:
        return self._call(self.client.conferences(conference_sid).participants.create,
                          from_=from_, to=to, **options)

    def update_participant(self, conference_sid: str, call_sid: str, **fields: Any) -> ParticipantInstance:
        """fields: muted=, hold=, hold_url=, announce_url=, …"""
        return self._call(self.client.conferences(conference_sid).participants(call_sid).update, **fields)

    def remove_participant(self, conference_sid: str, call_sid: str) -> bool:
        removed: bool = self._call(self.client.conferences(conference_sid).participants(call_sid).delete)
        return removed

    def close(self) -> None:
        self.client.http_client.session.close()

    # --- one way to call the client ------------------------------------------
    def _call(self, fn: Callable[..., T], /, *, read_only: bool = False, **kwargs: Any) -> T:
        """Call the client; map its failures. A read that got no answer is simply
        retryable (status 0); only a write can have an unknown outcome."""
        if self.not_configured:
            raise TwilioNotConfigured(self.not_configured)
        try:
            return fn(**kwargs)
        except TwilioRestException as exc:
            raise TwilioError(exc.status, exc.code, exc.msg) from exc
        except TwilioException as exc:  # a refused list page: ("Unable to fetch page", response)
            response = exc.args[1] if len(exc.args) > 1 else None
            status = getattr(response, "status_code", 0) or 0
            code, message = _error_body(getattr(response, "text", ""))
            raise TwilioError(status, code, message or str(exc.args[0])) from exc
        except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise TwilioError(0, None, f"could not reach Twilio: {type(exc).__name__}") from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            if isinstance(exc, requests.exceptions.ConnectionError) and _never_sent(exc):
                raise TwilioError(0, None, f"could not reach Twilio: {_reason(exc)}") from exc
            if read_only:
                raise TwilioError(0, None, f"no answer from Twilio: {type(exc).__name__}") from exc
            raise OutcomeUnknown(str(exc)) from exc


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection failed before the request went out (refused, DNS)."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError)  # includes NameResolutionError


def _reason(exc: requests.exceptions.ConnectionError) -> str:
    """What stopped the connection, in a word an operator can act on."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "its name did not resolve (DNS)"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return "the connection was refused or failed"
    return type(exc).__name__


def _error_body(text: str) -> tuple[int | None, str]:
    try:
        body = json.loads(text or "{}")
    except ValueError:
        return None, ""
    return _int_or_none(body.get("code")), str(body.get("message") or "")


def _int_or_none(value: str | int | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def init_app(app: Flask, settings: Settings) -> TwilioGateway:
    gateway = TwilioGateway(settings.twilio_account_sid, settings.twilio_auth_token,
                            settings.twilio_api_base_url, not_configured=not_configured(settings))
    app.extensions[EXTENSION] = gateway
    return gateway


def gateway() -> TwilioGateway:
    return cast(TwilioGateway, current_app.extensions[EXTENSION])  # put there by init_app
