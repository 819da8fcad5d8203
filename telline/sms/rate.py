"""Per-sender send rate, shared by every RQ worker on every machine through Redis.

Twilio meters each sender (1 segment/s for a long code, 3 toll-free, 100 short
code…) and queues what goes over. The send job calls `acquire()` just before it
asks Twilio to send, so telline itself never goes faster than the line's rate,
and goes that fast whenever there is a backlog.

The counting is the `limits` library's moving window on Redis: each unit sent is
a timestamp in a Redis list, and one Lua script (atomic, so safe for any number
of threads, processes and machines) admits `cost` units only if the window then
holds at most its amount. A moving window is what guarantees "never more than N
in ANY 1-second span"; a fixed window would allow 2N across a boundary.

Limits of that guarantee:
- Timestamps come from each worker's clock (`time.time()`), so the machines'
  clocks must agree (NTP): a clock behind by d lets a window admit early by d.
- The window is keyed by sender AND rate, so changing a line's rate starts a new,
  empty window (at most one window's worth of extra sends, once).
"""

from __future__ import annotations

import logging
import math
import random
import time

import redis
from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from telline.phone import mask

log = logging.getLogger(__name__)

# Sleeps end a random 0–2 % of the window after the moment a unit frees, so that
# many blocked workers don't all hit Redis at that moment. It also costs about
# half of that in throughput (each slot is reused ~1 % late): the fill stays ≥ 98 %.
JITTER = 0.02


def window(per_second: float) -> RateLimitItemPerSecond:
    """The integer window that never exceeds `per_second`, as close to it as possible.

    ≥ 1/s: floor(per_second) per 1 s (2.5 → 2/s: 5 per 2 s could put 5 in one second).
    < 1/s: 1 per ceil(1/per_second) s (0.5 → 1 per 2 s, 0.3 → 1 per 4 s).
    The 1e-9 tolerances only absorb float error (1/3 must give 1 per 3 s, not 4).
    """
    if not per_second > 0:
        raise ValueError(f"per_second must be > 0, not {per_second!r}")
    seconds = 1 if per_second >= 1 else math.ceil(1 / per_second - 1e-9)
    return RateLimitItemPerSecond(math.floor(per_second * seconds + 1e-9), seconds)


class SenderRateLimiter:
    def __init__(self, connection: redis.Redis, prefix: str = "telline:rate"):
        # Shares the app's connection pool (telline.queue.queues().connection): the
        # URI only names the scheme when a pool is given. Redis errors propagate as is.
        storage = RedisStorage("redis://", connection_pool=connection.connection_pool, key_prefix=prefix)
        self._limiter = MovingWindowRateLimiter(storage)

    def try_acquire(self, sender: str, per_second: float, cost: int = 1) -> float:
        """0.0 and recorded if `cost` units may go now; else seconds to wait before
        trying again (jitter included), and nothing recorded.

        A cost above the window's amount (10 segments on a 1/s line) is charged as
        one whole window once the window is empty: it is never refused for good, but
        the excess is not counted. `acquire()` charges it in full.
        """
        item = window(per_second)
        cost = min(_check_cost(cost), item.amount)
        if self._limiter.hit(item, sender, cost=cost):
            return 0.0
        reset_at, remaining = self._limiter.get_window_stats(item, sender)
        jitter = random.uniform(0, JITTER * item.get_expiry())
        if remaining >= cost:  # units freed between the two calls: try again at once
            return jitter
        # reset_at is when the oldest unit in the window expires: at least one more
        # unit is free then (a larger cost may need to wait again after it).
        return max(reset_at - time.time(), 0.0) + jitter

    def acquire(self, sender: str, per_second: float, cost: int = 1, timeout: float = 60.0) -> bool:
        """Block until `cost` units may be sent from `sender` without exceeding
        `per_second` in any window; record them and return True. False if not
        possible within `timeout` (sleeps, never spins).

        A cost above the window's amount is charged in instalments: the remainder
        first, then whole windows, each as soon as the window is empty. The message
        goes out right after the last, a full window, so nothing else is sent in that
        window and the long-run rate counts every unit. Waits ~cost/rate seconds.
        If the timeout strikes between instalments, those already recorded stay used
        (the line runs slower for one window; it never runs faster).
        """
        item = window(per_second)
        whole, remainder = divmod(_check_cost(cost), item.amount)
        instalments = ([remainder] if remainder else []) + [item.amount] * whole
        deadline = time.monotonic() + timeout
        for units in instalments:
            while (wait := self.try_acquire(sender, per_second, units)) > 0:
                if time.monotonic() + wait > deadline:
                    log.warning("send rate: no room in time", extra={
                        "sender": mask(sender), "per_second": per_second, "cost": cost, "timeout": timeout})
                    return False
                time.sleep(wait)
        return True


def _check_cost(cost: int) -> int:
    if not (isinstance(cost, int) and cost >= 1):
        raise ValueError(f"cost must be a whole number ≥ 1, not {cost!r}")
    return cost
