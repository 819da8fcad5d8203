"""Per-sender send rate, shared by every RQ worker on every machine through Redis.

Twilio meters each sender (1 segment/s for a long code, 3 toll-free, 100 short
code…) and queues what goes over. The send job calls `acquire()` just before it
asks Twilio to send, so telline itself never goes faster than the line's rate,
and goes that fast whenever there is a backlog.

How: a moving window (never more than N in ANY window; a fixed window allows 2N
across a boundary) kept as a log of send times in one Redis list per sender. One
Lua script, atomic in Redis, finds the earliest slot that keeps every window within
its amount and books it; the worker then sleeps until its slot. Booking (rather
than "retry when there is room") means no polling, no stampede when a slot frees,
first come first served, and a long text is not starved by short ones.

Why not the `limits` library (its moving window was evaluated first): it stamps
entries with each worker's own clock (machines' clocks differ), counts whole
seconds only so it has no guard band (measured: 51–53 sends in one second at
50/s with 3–4 workers, because the moment a worker sends drifts by a few ms after
the moment it was counted), and refuses a cost above the window for ever.
Here time is Redis's (`TIME`) and every window is GUARD seconds longer than the
rate says, which absorbs that drift at a cost of ~5 % throughput.
"""

from __future__ import annotations

import logging
import math
import time

import redis

from telline.phone import mask

log = logging.getLogger(__name__)

# Added to every window: covers how much later than its slot one request reaches Twilio than
# another: a send thread may start up to send_pool.LATE (15 ms) after its slot, and the request's
# way there varies by a few ms more, tens on a busy machine (tests/bench/bench_rate_pipeline.py
# +lagprobe: p99 17–20 ms from call to stand-in with 32 threads at 200 ms latency). 30 ms let a
# 1-s window reach 101–105 on a 100/s line; 50 ms kept it at 100. 100/s then runs at 100 per
# 1.05 s = 95/s under backlog.
GUARD = 0.05
CLOCK_EVERY = 60.0  # seconds between two readings of Redis's clock against this process's

# KEYS[1]: the sender's send times (Redis clock, seconds), newest first; may hold
#          future times (booked slots), never more than `amount` entries.
# ARGV: amount, window (s, guard included), cost, max_wait (s), spacing (s: at least this long
#       after the newest slot; 0 lets a window's worth go at once).
# Returns {1, wait, at} when booked (send in `wait` s, at `at` on Redis's clock), {0, wait, at}
# when the earliest slot is further away than max_wait (nothing booked).
_BOOK = """
local amount, window, cost, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local spacing = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- A cost above the amount fills consecutive windows, `amount` units each; the
-- message goes at the first slot, in an otherwise empty window.
local first = math.min(cost, amount)
local at = now
local newest = redis.call('LINDEX', KEYS[1], 0)
if newest then at = math.max(at, tonumber(newest) + spacing) end  -- after every slot already booked
local blocking = redis.call('LINDEX', KEYS[1], amount - first)
if blocking then at = math.max(at, tonumber(blocking) + window) end  -- room for `first` in (at - window, at]
if at - now > max_wait then return {0, tostring(at - now), tostring(at)} end
local left, slot = cost, at
while left > 0 do
    for _ = 1, math.min(left, amount) do redis.call('LPUSH', KEYS[1], string.format('%.6f', slot)) end
    left = left - amount
    slot = slot + window
end
redis.call('LTRIM', KEYS[1], 0, amount - 1)
redis.call('PEXPIRE', KEYS[1], math.ceil((slot - now) * 1000))  -- gone once its last window has passed
return {1, tostring(at - now), tostring(at)}
"""


def cost(unit: str, segments: int) -> int:
    """What one text uses of a line's rate: its segments, or 1 where the line counts texts."""
    return max(segments, 1) if unit == "segments" else 1


def window(per_second: float) -> tuple[int, float]:
    """(amount, seconds): the window that never exceeds `per_second`, as close as possible.

    ≥ 1/s: floor(per_second) per second (2.5 → 2: 5 per 2 s could put 5 in one second).
    < 1/s: 1 per 1/per_second seconds (0.5 → 1 per 2 s, 0.3 → 1 per 3.33 s).
    """
    if not 0 < per_second < math.inf:
        raise ValueError(f"per_second must be > 0, not {per_second!r}")
    if per_second < 1:
        return 1, 1 / per_second
    return math.floor(per_second + 1e-9), 1.0  # 1e-9: a rate computed as 2.9999999 still means 3


class SenderRateLimiter:
    """`connection` is the app's (telline.job_queues.queues().connection); any redis.Redis works."""

    def __init__(self, connection: redis.Redis, prefix: str = "telline:rate", guard: float = GUARD):
        self._connection = connection
        self._book = connection.register_script(_BOOK)
        self.prefix, self.guard = prefix, guard
        self._offset: tuple[float, float] | None = None  # (Redis clock − monotonic, when measured)

    def try_acquire(self, sender: str, per_second: float, cost: int = 1) -> float:
        """0.0 and recorded if `cost` units may go now; else the seconds until they
        could (nothing recorded; slots booked meanwhile by `acquire()` come first)."""
        booked, wait = self._try(sender, per_second, cost, max_wait=0.0)
        return 0.0 if booked else max(wait, 0.001)

    def book(self, sender: str, per_second: float, cost: int = 1, max_wait: float = 60.0) -> tuple[bool, float]:
        """Book the earliest paced slot for `cost` units from `sender`: (True, seconds until it) — the
        caller sends then (telline.sms.send_pool) — or (False, seconds until it), booking nothing,
        when it is more than `max_wait` away.

        Paced: each slot comes at least cost / rate after the one before, so a backlog goes out
        evenly (a text every 10 ms at 100/s) rather than as a window's worth at once every window:
        a burst of simultaneous requests reaches Twilio spread by however long each takes to get
        there, and a spread of more than GUARD puts one window over the rate."""
        return self._try(sender, per_second, cost, max_wait=max_wait, paced=True)

    def peek(self, sender: str, per_second: float, cost: int = 1) -> float:
        """Seconds until the earliest paced slot for `cost` units from `sender`, booking nothing."""
        return max(self._try(sender, per_second, cost, max_wait=-1.0, paced=True)[1], 0.0)

    def acquire(self, sender: str, per_second: float, cost: int = 1, timeout: float = 60.0) -> bool:
        """Block until `cost` units may be sent from `sender` without exceeding
        `per_second` in any window; record them and return True. False at once,
        recording nothing, if the earliest slot is more than `timeout` away.

        A cost above the window's amount (10 segments on a 1/s line) goes out as soon
        as the window is empty and books the following windows too (10 s there), so
        the long-run rate counts every unit. Only that one message is over the rate
        in its window, which no limiter can avoid (Twilio then paces its segments).
        A worker killed while it waits leaves its slot unused: slower, never faster.
        """
        booked, wait = self._try(sender, per_second, cost, max_wait=timeout)
        if not booked:
            log.warning("send rate: no slot in time", extra={
                "sender": mask(sender), "per_second": per_second, "cost": cost, "wait": round(wait, 3)})
            return False
        time.sleep(max(wait, 0.0))  # the slot is ours: no need to ask again
        return True

    def _try(self, sender: str, per_second: float, cost: int, max_wait: float,
             paced: bool = False) -> tuple[bool, float]:
        """(booked, seconds from now until the slot by this process's clock: negative when the answer
        took so long to come back that the slot has passed)."""
        if not (isinstance(cost, int) and cost >= 1):
            raise ValueError(f"cost must be a whole number ≥ 1, not {cost!r}")
        amount, seconds = window(per_second)
        # The line's own Twilio number, not a member's: fine in a key, masked in logs.
        spacing = min(cost, amount) * (seconds + self.guard) / amount if paced else 0.0
        booked, _, at = self._book(keys=[f"{self.prefix}:{sender}"],
                                   args=[amount, seconds + self.guard, cost, max_wait, spacing])
        # From the slot itself (Redis's clock), not from "wait" counted from when Redis ran the script:
        # the answer's way back (a busy process may take tens of ms to read it) must not push the send
        # later than its slot, by a different amount each time.
        return bool(booked), float(at) - self._redis_minus_monotonic() - time.monotonic()

    def _redis_minus_monotonic(self) -> float:
        """Redis's clock minus this process's monotonic clock, measured over the quickest of a few
        round trips, and again every CLOCK_EVERY seconds (either clock may drift)."""
        now = time.monotonic()
        if self._offset is None or now - self._offset[1] > CLOCK_EVERY:
            best: tuple[float, float] | None = None  # (round trip, offset)
            for _ in range(3):
                before = time.monotonic()
                sec, usec = self._connection.time()
                after = time.monotonic()
                offset = sec + usec / 1e6 - (before + after) / 2
                if best is None or after - before < best[0]:
                    best = (after - before, offset)
            assert best is not None
            self._offset = (best[1], now)
        return self._offset[0]
