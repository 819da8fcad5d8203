"""Texts that arrived while the database did not answer, kept in Redis until it does.

Twilio does not retry an SMS webhook that fails, so a text the database could not take would be
lost, an opt-out among them. The webhook parks it here instead (the fields Twilio sent, as
JSON) and answers as usual; `replay()` then stores and routes each one, oldest first, as if it
had just arrived: the job `telline.jobs.replay_parked_texts`, run by the cron. A text that was
stored after all (the failure came with the commit) is recognised by its MessageSid and not
handled twice.

The one place where a member's number and words sit in Redis: while the database is down, and
for KEEP at most.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

import redis
from sqlalchemy.orm import Session

from telline import db
from telline.sms.inbound import IncomingText, handle_text
from telline.sms.router import Router

log = logging.getLogger(__name__)

PARKED = "telline:sms:parked"  # newest first
REPLAYING = "telline:sms:replaying"  # taken from PARKED, not yet stored (a replay stopped midway)
FAILED = "telline:sms:parked-failed"  # could not be handled for another reason: for an operator
KEEP = dt.timedelta(days=7)


def park(connection: redis.Redis, text: IncomingText) -> bool:
    """Keep `text` for replay(); False if Redis does not answer either (the text is lost)."""
    try:
        with connection.pipeline() as pipe:  # MULTI/EXEC: the text and the list's expiry together
            pipe.lpush(PARKED, json.dumps(dataclasses.asdict(text)))
            pipe.expire(PARKED, KEEP)
            pipe.execute()
    except redis.RedisError as exc:
        log.error("incoming text lost: neither the database nor Redis answered",
                  extra={"message_sid": text.message_sid, "error": type(exc).__name__})
        return False
    log.warning("incoming text parked: the database did not answer", extra={"message_sid": text.message_sid})
    return True


def waiting(connection: redis.Redis) -> int:
    return connection.llen(PARKED) + connection.llen(REPLAYING)


def replay(session: Session, router: Router, connection: redis.Redis) -> int:
    """Store and route the parked texts, oldest first; returns how many. Stops, keeping the rest,
    while the database still does not answer. One that fails otherwise (a bug, a payload from
    another version) is set aside in FAILED and logged, so it cannot hold up the others."""
    replayed = 0
    while True:
        taken = connection.lindex(REPLAYING, -1) or connection.rpoplpush(PARKED, REPLAYING)
        if taken is None:
            return replayed
        raw = taken.decode() if isinstance(taken, bytes) else str(taken)
        try:
            text = IncomingText(**json.loads(raw))
            handled_by = handle_text(session, router, text)
        except db.UNAVAILABLE:
            session.rollback()
            log.warning("parked texts wait: the database still does not answer")
            return replayed
        except Exception:
            session.rollback()
            log.exception("parked text could not be handled: set aside")
            with connection.pipeline() as pipe:
                pipe.lrem(REPLAYING, -1, raw)
                pipe.lpush(FAILED, raw)
                pipe.expire(FAILED, KEEP)
                pipe.execute()
            continue
        connection.lrem(REPLAYING, -1, raw)
        replayed += 1
        log.info("parked text replayed", extra={"message_sid": text.message_sid, "handled_by": handled_by})
