"""RQ job functions. Arguments are ids; each job re-reads its rows.

Jobs run inside an app context (see telline.worker), so `db.session()` and the
gateway work as in a request. Every job must be safe to run twice: a worker
killed mid-job has its job retried after its heartbeat lapses.
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from telline import db
from telline.models import CodeLockout, WebhookKey, utcnow

log = logging.getLogger(__name__)

# Twilio retries a webhook for minutes, not days: a week of keys is ample.
WEBHOOK_KEY_RETENTION = dt.timedelta(days=7)
CODE_LOCKOUT_RETENTION = dt.timedelta(days=30)


def prune_webhook_keys() -> int:
    session = db.session()
    cutoff = utcnow() - WEBHOOK_KEY_RETENTION
    deleted = session.execute(sa.delete(WebhookKey).where(WebhookKey.received_at < cutoff)).rowcount
    session.commit()
    log.info("pruned webhook keys", extra={"deleted": deleted})
    return deleted


def prune_code_lockouts() -> int:
    """Locks for wrong codes are kept a while after they end, as a record for operators."""
    session = db.session()
    cutoff = utcnow() - CODE_LOCKOUT_RETENTION
    deleted = session.execute(sa.delete(CodeLockout).where(CodeLockout.until < cutoff)).rowcount
    session.commit()
    log.info("pruned code lockouts", extra={"deleted": deleted})
    return deleted
