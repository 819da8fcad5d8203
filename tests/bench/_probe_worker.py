"""`telline worker`, with diagnostic variants swapped in (BENCH_VARIANT, comma-separated):

- guardNN: the rate limiter's guard band is NN ms instead of telline.sms.rate.GUARD.
- lagprobe: note, per send in a batch, the rate slot booked (Redis clock), when the worker's
           send thread calls Twilio, and when it got the answer, in the Redis list bench:lag (JSON), so the
           benchmark can say where the time between a slot and the stand-in went.

Used only by the benchmarks: `python tests/bench/_probe_worker.py worker [--simple]`.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

variant = {v.strip() for v in os.environ.get("BENCH_VARIANT", "").split(",") if v.strip()}

for v in variant:
    if v.startswith("guard"):
        from telline.sms import rate as _rate
        _rate.GUARD = int(v[len("guard"):]) / 1000
        _rate.SenderRateLimiter.__init__.__defaults__ = ("telline:rate", _rate.GUARD)

if "lagprobe" in variant:
    import json
    import threading
    import time

    import redis

    from telline.sms import send_pool
    from telline.twilio import gateway as gateway_module

    _slots: dict[str, float] = {}  # To → its booked slot, this machine's clock (Redis's here)
    _lock = threading.Lock()
    _probes = redis.Redis.from_url(os.environ["TELLINE_REDIS_URL"])  # the pool's threads have no app context
    _send_at = send_pool.SendPool.send_at

    def probed_send_at(self, slot, text, rebook):
        with _lock:
            _slots[text.to] = time.time() + (slot - time.monotonic())
        return _send_at(self, slot, text, rebook)
    send_pool.SendPool.send_at = probed_send_at
    _send = gateway_module.TwilioGateway.send_sms

    def probed_send(self, **kwargs):
        called = time.time()
        sent = _send(self, **kwargs)
        done = time.time()
        with _lock:
            slot = _slots.pop(kwargs.get("to"), None)
        _probes.rpush("bench:lag", json.dumps({"to": kwargs.get("to"), "slot": slot, "call": called, "done": done}))
        return sent
    gateway_module.TwilioGateway.send_sms = probed_send

from telline.cli import main  # noqa: E402

sys.argv[0] = "telline"
main()
