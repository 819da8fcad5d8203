"""Webhooks are handled once: Twilio retries, and status callbacks arrive twice.

Each handler names its natural key ("sms:SM…", "conf:CF…:12") and asks `first_time`.
The key is written in the caller's transaction, so a handler that fails and rolls
back leaves the key unwritten and Twilio's retry is processed.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import db
from telline.models import WebhookKey, utcnow


def first_time(session: Session, key: str) -> bool:
    """One statement: the key is written unless it is there. A concurrent twin that wrote it first
    makes this one wait for its transaction, then find it (False) — or, rolled back, not (True)."""
    written = session.connection().execute(_insert_key(session.get_bind().dialect.name),
                                           {"webhook_key": key, "now": utcnow()}).first()
    return written is not None


@functools.cache
def _insert_key(dialect: str) -> sa.Executable:
    insert = db.insert_for(dialect)
    return (insert(WebhookKey)
            .values(key=sa.bindparam("webhook_key"), received_at=sa.bindparam("now", type_=WebhookKey.received_at.type))
            .on_conflict_do_nothing(index_elements=[WebhookKey.key]).returning(WebhookKey.key))
