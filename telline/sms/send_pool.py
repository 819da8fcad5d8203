"""Several texts in flight from one worker, each sent at the moment the line's rate booked for it.

Twilio takes 0.1–0.3 s to answer a send: a worker that waits for each answer before the next
send tops out near 5 texts/s, whatever the line allows. A batch (telline.sms.batch) books each
text's slot in the line's rate (telline.sms.rate), then hands the text to this pool: one of its
threads waits for the slot, sends on a Twilio client of its own (the official client keeps its
last request on itself, and its HTTP session is not meant to be shared) and gives back Twilio's
answer. Every database write stays on the batch's own thread.

At most `size` texts are booked or in flight at once (reserve()): a slot is booked only when a
thread is free to take it, so no text goes out late because every thread was busy. A thread that
wakes late anyway (a busy machine) books a new slot rather than send next to texts that are on
time — the rate's guard band (rate.GUARD) covers a few ms, not a stalled thread: slower, never
faster than the line's rate.

One pool per process, kept for its life: its threads' clients keep their connections to Twilio
open, so a send does not wait for a new TLS handshake after its slot.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

from flask import Flask, current_app

from telline.twilio.gateway import SentMessage, TwilioGateway, gateway

EXTENSION = "telline.send_pool"
# A thread that wakes this long after its slot books a new one; rate.GUARD (50 ms) is left to cover
# the way from here to Twilio.
LATE = 0.015


class NoSlot(Exception):
    """A late thread found no new slot soon enough: the text was not sent (its row goes back)."""


@dataclasses.dataclass(frozen=True)
class Text:
    from_: str
    to: str
    body: str
    status_callback: str | None


# Books a new slot for a text whose thread woke late: SenderRateLimiter.book's (booked, seconds until it).
Rebook = Callable[[], tuple[bool, float]]


class SendPool:
    def __init__(self, twilio: TwilioGateway, size: int):
        if size < 1:
            raise ValueError("a send pool needs at least one thread")
        self.size, self.pid = size, os.getpid()
        self._twilio = twilio
        self._free = threading.Semaphore(size)
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="telline-send")
        self._lock = threading.Lock()
        self.rebooked = 0  # texts whose thread woke late and booked a new slot (logged by the batch)
        self._sleep = time.sleep  # how a thread waits for its slot (a test stalls it)

    def reserve(self) -> None:
        """Wait for a free thread; the next send_at() takes it."""
        self._free.acquire()

    def unreserve(self) -> None:
        """Give back a reservation that no send_at() took (no slot was booked after all)."""
        self._free.release()

    def send_at(self, slot: float, text: Text, rebook: Rebook) -> Future[SentMessage]:
        """After reserve(): send `text` at `slot` (time.monotonic()) from a thread of the pool. The
        future holds Twilio's answer, or the gateway's TwilioError / OutcomeUnknown, or NoSlot."""
        try:
            return self._executor.submit(self._send, slot, text, rebook)
        except BaseException:
            self._free.release()
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _send(self, slot: float, text: Text, rebook: Rebook) -> SentMessage:
        try:
            while True:
                delay = slot - time.monotonic()
                if delay > 0:
                    self._sleep(delay)
                if time.monotonic() - slot <= LATE:
                    break
                with self._lock:
                    self.rebooked += 1
                booked, wait = rebook()  # the late slot is left unused
                if not booked:
                    raise NoSlot()
                slot = time.monotonic() + wait
            return self._own_twilio().send_sms(from_=text.from_, to=text.to, body=text.body,
                                               status_callback=text.status_callback)
        finally:
            self._free.release()

    def _own_twilio(self) -> TwilioGateway:
        twilio = getattr(self._local, "twilio", None)
        if twilio is None:
            twilio = self._local.twilio = self._twilio.another()
        return cast(TwilioGateway, twilio)


def pool() -> SendPool:
    """This process's pool (a forked work horse makes its own: threads do not survive a fork)."""
    app = current_app
    existing = cast(SendPool | None, app.extensions.get(EXTENSION))
    if existing is None or existing.pid != os.getpid():
        existing = app.extensions[EXTENSION] = SendPool(gateway(), app.config["TELLINE"].send_threads)
    return existing


def close(app: Flask) -> None:
    """Stop the app's pool, if it has one (tests, which build many apps in one process)."""
    existing = cast(SendPool | None, app.extensions.pop(EXTENSION, None))
    if existing is not None and existing.pid == os.getpid():
        existing.close()
