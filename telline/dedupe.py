"""Webhooks are handled once: Twilio retries, and status callbacks arrive twice.

Each handler names its natural key ("sms:SM…", "conf:CF…:12") and asks `first_time`.
The key is written in the caller's transaction, so a handler that fails and rolls
back leaves the key unwritten and Twilio's retry is processed.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from telline.models import WebhookKey


def first_time(session: Session, key: str) -> bool:
    if session.get(WebhookKey, key) is not None:
        return False
    try:
        with session.begin_nested():  # a concurrent twin may insert first: lose gracefully
            session.add(WebhookKey(key=key))
    except IntegrityError:
        return False
    return True
