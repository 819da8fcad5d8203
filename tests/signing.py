"""Sending webhooks to the app signed exactly as Twilio signs them."""

from __future__ import annotations

from twilio.request_validator import RequestValidator

from tests.conftest import AUTH_TOKEN

BASE = "http://localhost"


def signature(url: str, form: dict, token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


def post_signed(client, path: str, form: dict, *, token: str = AUTH_TOKEN, base: str = BASE,
                signed_url: str | None = None, headers: dict | None = None):
    """POST `form` to `path` with the X-Twilio-Signature Twilio would send for `signed_url`
    (default: the URL Twilio would call — TELLINE_PUBLIC_URL + path when the app has one)."""
    public = client.application.config["TELLINE"].public_url
    sig = signature(signed_url or (public or base) + path, form, token)
    return client.post(path, data=form, base_url=base,
                       headers={"X-Twilio-Signature": sig, **(headers or {})})
