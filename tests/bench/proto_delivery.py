"""A PROTOTYPE of a cheaper deliver_batch, for benchmarking only (not telline's code).

It exists to measure the change recommended for telline/sms/delivery.py; workers
run it through tests/bench/_proto_worker.py, which swaps it in for
telline.sms.delivery.deliver_batch (RQ imports the job's function by name).

Same rules as telline.sms.delivery.deliver() for every message; what changes is how
many round trips they cost:
- the batch's rows, line, group and members are read once per job (4 queries per
  50 messages, not 5 per message), then the transaction ends: no snapshot is held
  across the sends;
- quiet hours and the member's sms_status are checked in Python from those rows;
- consent is checked IN the compare-and-set claim (one UPDATE … WHERE status and
  attempts as read AND the number's latest consent event is not an opt-out …
  RETURNING id), so it is still checked at send time, atomically with the claim;
  no refresh after the claim;
- `chunk` > 1 claims up to `chunk` messages in one UPDATE and records their SIDs in
  one executemany UPDATE + one commit after sending them (a crash in between
  leaves rows "submitting", which deliver() already reconciles). The chunk is
  capped at half a second of the line's rate, so on a slow line it is 1 and
  consent is checked just before each send, as now;
- callbacks that arrived before the SID was known: one query per chunk;
- anything unusual (not claimable, deferred by quiet hours, refused, a claim lost,
  Twilio errors) goes through telline's own deliver() code unchanged.

BENCH_PROTO_CHUNK (env): 1 = per-message claim and record (2 UPDATEs + 2 commits
a message); N = chunked as above (default 50). BENCH_PROTO_BOOK_MANY=1: the chunk's
rate slots are booked in one pipelined round trip (telline's script, once per message)
instead of one acquire() per message.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from telline import db, phone
from telline.models import ConsentEvent, Group, Line, Member, Message, MessageEvent, utcnow
from telline.queue import queues
from telline.sms import consent, delivery
from telline.sms.outbound import BACKOFF, retry_policy
from telline.sms.quiet_hours import next_allowed
from telline.sms.status import apply_known_events
from telline.twilio.gateway import OutcomeUnknown, TwilioError, gateway

log = logging.getLogger("telline.sms.delivery")
CHUNK = int(os.environ.get("BENCH_PROTO_CHUNK", "50"))
BOOK_MANY = os.environ.get("BENCH_PROTO_BOOK_MANY") == "1"  # the chunk's rate slots in one round trip
CHUNK_SECONDS = 0.5


def _not_opted_out():
    latest = (sa.select(ConsentEvent.action)
              .where(ConsentEvent.phone == Message.to_number, ConsentEvent.channel == "sms")
              .order_by(ConsentEvent.id.desc()).limit(1).scalar_subquery())
    return sa.func.coalesce(latest, "") != consent.OPT_OUT


def deliver_batch(message_ids: list[int]) -> dict[str, int]:
    session = db.session()
    outcome: dict[str, int] = {}

    def count(status):
        outcome[status] = outcome.get(status, 0) + 1

    rows = {r.id: r for r in session.execute(sa.select(
        Message.id, Message.direction, Message.status, Message.attempts, Message.to_number, Message.body,
        Message.line_id, Message.member_id, Message.urgent, Message.kind, Message.segments,
        Message.broadcast_id, Message.send_after).where(Message.id.in_(message_ids)))}
    line_ids = {r.line_id for r in rows.values() if r.line_id}
    lines = {r.id: r for r in session.execute(sa.select(
        Line.id, Line.phone_number, Line.sms_rate, Line.sms_rate_unit, Group.timezone, Group.quiet_start,
        Group.quiet_end).join(Group, Group.id == Line.group_id).where(Line.id.in_(line_ids)))}
    member_ids = {r.member_id for r in rows.values() if r.member_id}
    members = {r.id: r for r in session.execute(sa.select(Member.id, Member.timezone, Member.sms_status)
                                                 .where(Member.id.in_(member_ids)))}
    session.rollback()  # nothing held open across the sends

    fast, slow = [], []
    now = utcnow()
    for message_id in message_ids:
        r = rows.get(message_id)
        line = lines.get(r.line_id) if r else None
        member = members.get(r.member_id) if r and r.member_id else None
        if (r is None or line is None or r.direction != "outbound" or r.status not in delivery.CLAIMABLE
                or not r.to_number or r.kind == "opt_out_confirmation"
                or (r.send_after is not None and r.send_after > now + dt.timedelta(seconds=1))
                or (member is not None and member.sms_status in ("invalid", "landline"))
                or (not r.urgent and next_allowed(now, ZoneInfo((member.timezone if member else None)
                                                                or line.timezone),
                                                  line.quiet_start, line.quiet_end))):
            slow.append(message_id)  # telline's own path decides
        else:
            fast.append((r, line))

    for message_id in slow:
        count(_guarded(session, lambda: delivery.deliver(message_id), message_id))

    i = 0
    while i < len(fast):
        line = fast[i][1]
        per_message = line.sms_rate / (1 if line.sms_rate_unit == "messages" else max(fast[i][0].segments, 1))
        size = max(1, min(CHUNK, math.floor(per_message * CHUNK_SECONDS)))
        chunk = []
        while i < len(fast) and len(chunk) < size and fast[i][1].id == line.id:
            chunk.append(fast[i][0])
            i += 1
        _send_chunk(session, chunk, line, count)
    return outcome


def _send_chunk(session, chunk, line, count) -> None:
    claimed = set(session.scalars(
        sa.update(Message)
        .where(sa.tuple_(Message.id, Message.status, Message.attempts).in_(
            [(r.id, r.status, r.attempts) for r in chunk]), _not_opted_out())
        .values(status="submitting", attempts=Message.attempts + 1, updated_at=utcnow())
        .returning(Message.id)
        .execution_options(synchronize_session=False)))
    session.commit()
    handed: list[dict] = []
    limiter = delivery.limiter()
    # Booked together, a chunk's slots are all "now" while the window has room, and the
    # sends then lag their slots more and more along the chunk (measured: 77 in a 1-s
    # window at 50/s): only for lines whose window a chunk cannot come near to filling.
    book_many = BOOK_MANY and line.sms_rate >= 20 * CHUNK
    slots = _book_slots(limiter, line, [r for r in chunk if r.id in claimed]) if book_many else {}
    for n, r in enumerate(chunk):
        if r.id not in claimed:  # opted out, or another job has it: telline's path says which
            count(_guarded(session, lambda: delivery.deliver(r.id), r.id))
            continue
        cost = r.segments if line.sms_rate_unit == "segments" else 1
        if book_many:
            at = slots.get(r.id)
            if at is not None:
                time.sleep(max(0.0, at - time.monotonic()))
            acquired = at is not None
        else:
            acquired = limiter.acquire(line.phone_number, line.sms_rate, cost=cost, timeout=delivery.RATE_WAIT)
        if not acquired:
            _record(session, handed)
            _unclaim(session, [x for x in chunk[n:] if x.id in claimed])
            for x in chunk[n:]:
                if x.id in claimed:
                    queues()[_queue_for(x)].enqueue_in(dt.timedelta(seconds=1.0), delivery.deliver, x.id,
                                                       retry=retry_policy())
                    count(x.status)
            return
        try:
            sent = gateway().send_sms(from_=line.phone_number, to=r.to_number, body=r.body,
                                      status_callback=delivery._status_callback_url())
        except (TwilioError, OutcomeUnknown) as exc:
            _record(session, handed)
            count(_guarded(session, lambda: _failed_send(session, r.id, exc), r.id))
            continue
        handed.append(dict(id=r.id, twilio_sid=sent.sid, status=sent.status or "queued", sent_at=utcnow()))
        log.info("text handed to Twilio", extra={"message_id": r.id, "to": phone.mask(r.to_number),
                                                 "segments": r.segments})
        count(sent.status or "queued")
        if CHUNK == 1:
            _record(session, handed)
    _record(session, handed)


def _book_slots(limiter, line, rows) -> dict[int, float]:
    """One round trip for the chunk: telline's own booking script, once per message, pipelined
    (each call atomic, in order). {message id: time.monotonic() to send at}; a message whose
    slot is further than RATE_WAIT is absent (nothing booked for it or after it)."""
    from telline.sms.rate import window
    amount, seconds = window(line.sms_rate)
    pipe = limiter._book.registered_client.pipeline(transaction=False)
    for r in rows:
        cost = r.segments if line.sms_rate_unit == "segments" else 1
        limiter._book(keys=[f"{limiter.prefix}:{line.phone_number}"],
                      args=[amount, seconds + limiter.guard, cost, delivery.RATE_WAIT], client=pipe)
    answers = pipe.execute()
    now = time.monotonic()  # the waits were computed a little earlier: sleeping from here is late, never early
    slots = {}
    for r, (booked, wait) in zip(rows, answers):
        if not int(booked):
            break
        slots[r.id] = now + float(wait)
    return slots


def _record(session, handed: list[dict]) -> None:
    if not handed:
        return
    now = utcnow()
    session.execute(sa.update(Message), [dict(h, updated_at=now, error_code=None, error_message=None)
                                         for h in handed])
    sids = [h["twilio_sid"] for h in handed]
    early = set(session.scalars(sa.select(MessageEvent.twilio_sid).where(MessageEvent.twilio_sid.in_(sids))))
    for h in handed:
        if h["twilio_sid"] in early:
            apply_known_events(session, session.get(Message, h["id"]))
    session.commit()
    handed.clear()


def _unclaim(session, rows) -> None:
    for r in rows:
        session.execute(sa.update(Message).where(Message.id == r.id, Message.status == "submitting")
                        .values(status=r.status, attempts=r.attempts).execution_options(synchronize_session=False))
    session.commit()


def _failed_send(session, message_id, exc) -> str:
    """As deliver() does after gateway.send_sms raised."""
    msg = session.get(Message, message_id)
    member = session.get(Member, msg.member_id) if msg.member_id else None
    if isinstance(exc, TwilioError):
        return delivery._refused_by_twilio(session, msg, member, exc)
    log.warning("send outcome unknown; reconciling", extra={"message_id": msg.id})
    time.sleep(0.5)
    if delivery._reconcile(session, msg):
        return msg.status
    raise exc


def _guarded(session, fn, message_id) -> str:
    """deliver_batch's own handling around each message."""
    try:
        return fn()
    except (delivery.SendRetry, OutcomeUnknown, TwilioError):
        queues()["bulk"].enqueue_in(dt.timedelta(seconds=BACKOFF[0]), delivery.deliver, message_id,
                                    retry=retry_policy())
        return "retrying"
    finally:
        session.rollback()


def _queue_for(r) -> str:
    return "urgent" if r.urgent else "bulk" if r.broadcast_id else "default"
