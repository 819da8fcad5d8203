"""Every /twilio/* request must carry a valid X-Twilio-Signature, checked by twilio's RequestValidator.

The signature covers the exact URL Twilio requested. Behind a reverse proxy,
`request.url` is the inside URL, so we use, in this order:
1. TELLINE_PUBLIC_URL + the path and query (the URL configured in Twilio's console), or
2. request.url as rebuilt by Werkzeug's ProxyFix from X-Forwarded-Proto/-Host,
   which the factory installs when TELLINE_PROXY_HOPS > 0.
"""

from __future__ import annotations

import logging

from flask import Request, abort, current_app, request
from twilio.request_validator import (
    HMAC_SHA1,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from telline import metrics
from telline.config import Settings

log = logging.getLogger(__name__)


def signed_url(req: Request, public_url: str | None) -> str:
    if public_url:
        query = req.query_string.decode("latin-1")
        return public_url + req.path + (f"?{query}" if query else "")
    return req.url


def is_valid(req: Request, settings: Settings) -> bool:
    signature = req.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return False
    algorithm = get_signature_algorithm(req.headers.get(SIGNATURE_SETTINGS_HEADER))
    secret = settings.twilio_auth_token
    if algorithm != HMAC_SHA1:
        if not settings.twilio_webhook_signing_key:
            return False  # a SharedKey-signed request we have no key for
        secret = settings.twilio_webhook_signing_key
    url = signed_url(req, settings.public_url)
    # JSON webhooks sign the URL (which carries bodySHA256) and the raw body, not form fields.
    params = req.get_data(as_text=True) if "bodySHA256" in req.args else req.form
    valid: bool = RequestValidator(secret).validate(url, params, signature, algorithm=algorithm)
    return valid


def require_twilio_signature() -> None:
    """before_request hook for the /twilio blueprint: 403 unless Twilio signed it."""
    settings = current_app.config["TELLINE"]
    if is_valid(request, settings):
        return None
    route = (request.blueprint or "unknown").rsplit(".", 1)[-1]  # "twilio.sms" → "sms"
    metrics.WEBHOOKS.labels(route=route, outcome="forbidden").inc()
    log.warning("rejected unsigned or badly signed webhook",
                extra={"path": request.path, "has_signature": SIGNATURE_HEADER in request.headers})
    abort(403)
