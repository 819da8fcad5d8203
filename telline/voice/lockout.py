"""Too many wrong access codes: the caller, or the whole line, waits a while.

Counters live in Redis (shared by every web worker) and expire by themselves.
Keys carry a hash of the caller's number, never the number.
"""

from __future__ import annotations

import dataclasses
import hashlib

import redis

WINDOW_SECONDS = 15 * 60


@dataclasses.dataclass(frozen=True)
class Limits:
    per_caller: int = 6  # two calls' worth of three tries
    per_line: int = 60  # a line being swept by many numbers
    lock_seconds: int = 15 * 60


class Lockout:
    def __init__(self, connection: redis.Redis, limits: Limits = Limits(), prefix: str = "telline:codes"):
        self.redis, self.limits, self.prefix = connection, limits, prefix

    def _keys(self, caller: str | None, line_id: int) -> tuple[str, str]:
        who = hashlib.sha256((caller or "anonymous").encode()).hexdigest()[:20]
        return f"{self.prefix}:caller:{line_id}:{who}", f"{self.prefix}:line:{line_id}"

    def is_locked(self, caller: str | None, line_id: int) -> bool:
        caller_key, line_key = self._keys(caller, line_id)
        counts = self.redis.mget(caller_key, line_key)
        return (int(counts[0] or 0) >= self.limits.per_caller) or (int(counts[1] or 0) >= self.limits.per_line)

    def failed(self, caller: str | None, line_id: int) -> bool:
        """Count one wrong code; True when that locks the caller (or the line) out."""
        caller_key, line_key = self._keys(caller, line_id)
        with self.redis.pipeline() as pipe:
            pipe.incr(caller_key)
            pipe.expire(caller_key, WINDOW_SECONDS, nx=True)
            pipe.incr(line_key)
            pipe.expire(line_key, WINDOW_SECONDS, nx=True)
            caller_count, _, line_count, _ = pipe.execute()
        locked = caller_count >= self.limits.per_caller or line_count >= self.limits.per_line
        if locked:  # the lock lasts lock_seconds from the failure that triggered it
            self.redis.expire(caller_key if caller_count >= self.limits.per_caller else line_key,
                              self.limits.lock_seconds)
        return locked
