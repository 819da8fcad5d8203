"""Benchmark the per-sender rate limiter alone: N processes drain a backlog at R/s.

    python tests/bench/bench_rate_limiter.py [--workers 2] [--rate 50] [--messages 1000]
                                             [--redis-url redis://127.0.0.1:6379/12]

Each worker pops items from a shared Redis list, calls `acquire()` and notes the
moment it returned (when the real job would call Twilio). Printed: the highest
count in any closed 1-second window (must be ≤ rate) and the mean rate (≥ 95 %
of it). The first window's worth goes out at once (the window starts empty), so
the mean rate is measured as rate / (mean time from send i − rate to send i): with
a backlog each slot should be reused as soon as its window has passed. The exit
status is 1 when either check fails.
Only this run's own keys are touched (a random prefix), and they are deleted.
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing
import statistics
import sys
import time
import uuid

import redis

from telline.sms.rate import SenderRateLimiter

SENDER = "+15005550006"


def drain(url: str, prefix: str, rate: float, ready, results) -> None:
    conn = redis.Redis.from_url(url)
    limiter = SenderRateLimiter(conn, prefix)
    ready.wait()  # start together: spawning and imports take a while
    sent = []
    while conn.lpop(f"{prefix}:backlog") is not None:
        if not limiter.acquire(SENDER, rate, timeout=30):
            raise RuntimeError("acquire timed out with a backlog")
        sent.append(time.monotonic())  # one clock for all processes on this machine
    results.put(sent)


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """Highest count of times in any closed window [t, t + width]."""
    times = sorted(times)
    return max(bisect.bisect_right(times, t + width) - i for i, t in enumerate(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()

    conn = redis.Redis.from_url(args.redis_url)
    prefix = f"telline:bench:{uuid.uuid4().hex[:8]}"
    conn.rpush(f"{prefix}:backlog", *range(args.messages))
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(args.workers + 1), ctx.Queue()
    workers = [ctx.Process(target=drain, args=(args.redis_url, prefix, args.rate, ready, results))
               for _ in range(args.workers)]
    try:
        for w in workers:
            w.start()
        ready.wait()
        start = time.monotonic()
        times = sorted(t for _ in workers for t in results.get(timeout=args.messages / args.rate * 3 + 60))
        for w in workers:
            w.join()
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
        keys = conn.keys(f"{prefix}:*")
        if keys:
            conn.delete(*keys)

    peak = max_in_window(times)
    steady = args.rate / statistics.fmean(b - a for a, b in zip(times, times[args.rate:], strict=False))
    print(f"{args.workers} workers, {len(times)} messages at {args.rate}/s")
    print(f"max in any 1-s window: {peak} (limit {args.rate})")
    print(f"mean rate: {steady:.2f}/s = {steady / args.rate:.1%} of {args.rate}")
    print(f"all {len(times)} sent in {times[-1] - start:.2f} s (the first {args.rate} at once)")
    return 0 if peak <= args.rate and steady >= 0.95 * args.rate else 1


if __name__ == "__main__":
    sys.exit(main())
