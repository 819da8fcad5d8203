"""`telline worker`, with diagnostic variants swapped in (BENCH_VARIANT, comma-separated):

- guardNN: the rate limiter's guard band is NN ms instead of telline.sms.rate.GUARD.
- lagprobe: note, per send, the rate slot booked (Redis clock), when the worker calls
           Twilio, and when it got the answer, in the Redis list bench:lag (JSON), so the
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

    from telline.sms import rate
    from telline.twilio import gateway as gateway_module

    _last = threading.local()
    _try = rate.SenderRateLimiter._try

    def probed_try(self, sender, per_second, cost, max_wait):
        booked, wait = _try(self, sender, per_second, cost, max_wait)
        if booked:
            _last.slot = time.time() + wait  # this machine's clock is Redis's here
        return booked, wait
    rate.SenderRateLimiter._try = probed_try
    _send = gateway_module.TwilioGateway.send_sms

    def probed_send(self, **kwargs):
        called = time.time()
        sent = _send(self, **kwargs)
        done = time.time()
        from telline.job_queues import queues
        queues().connection.rpush("bench:lag", json.dumps(
            {"to": kwargs.get("to"), "slot": getattr(_last, "slot", None), "call": called, "done": done}))
        _last.slot = None
        return sent
    gateway_module.TwilioGateway.send_sms = probed_send

from telline.cli import main  # noqa: E402

sys.argv[0] = "telline"
main()
