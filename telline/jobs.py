"""RQ job functions. Arguments are ids; each job re-reads its rows.

Jobs run inside an app context (see telline.worker), so `db.session()` and the
gateway work as in a request. Every job must be safe to run twice: a worker
killed mid-job has its job retried after its heartbeat lapses.
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from telline import db
from telline.models import Base, CodeLockout, WebhookKey, utcnow

log = logging.getLogger(__name__)

# Twilio retries a webhook for minutes, not days: a week of keys is ample.
WEBHOOK_KEY_RETENTION = dt.timedelta(days=7)
CODE_LOCKOUT_RETENTION = dt.timedelta(days=30)


def prune_webhook_keys() -> int:
    return _prune(WebhookKey, WebhookKey.received_at, WEBHOOK_KEY_RETENTION, "webhook keys")


def prune_code_lockouts() -> int:
    """Locks for wrong codes are kept a while after they end, as a record for operators."""
    return _prune(CodeLockout, CodeLockout.until, CODE_LOCKOUT_RETENTION, "code lockouts")


def _prune(model: type[Base], column: InstrumentedAttribute[dt.datetime], retention: dt.timedelta,
           what: str) -> int:
    session = db.session()
    deleted = db.rows_changed(session.execute(sa.delete(model).where(column < utcnow() - retention)))
    session.commit()
    log.info(f"pruned {what}", extra={"deleted": deleted})
    return deleted


def replay_parked_texts() -> int:
    """Texts that came while the database did not answer (telline.sms.parked), stored and routed
    now. For the cron, every minute: nothing to do costs two Redis commands, and a second run at
    the same time handles nothing twice."""
    from telline.job_queues import queues
    from telline.sms import parked
    from telline.sms.router import router
    return parked.replay(db.session(), router(), queues().connection)
