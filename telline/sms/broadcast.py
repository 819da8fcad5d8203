"""A coordinator's text to every opted-in member of a group, fanned out in batches.

start_broadcast() writes one row; after commit, fan_out() (a bulk-queue job) writes
one message row per recipient in a single INSERT and enqueues its deliver_batch jobs
(telline.sms.batch) in a single Redis round trip. Each message still goes through
the whole send path (consent at send time, quiet hours, the line's rate).
"""

from __future__ import annotations

import logging
import math

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import db
from telline.models import UNTEXTABLE, Broadcast, Group, Line, Member, Membership, Message
from telline.sms import consent, rate, segments
from telline.sms.outbound import MAX_BODY, InvalidText, retry_policy
from telline.tasks import durable, enqueue_after_commit

log = logging.getLogger(__name__)
# Texts per job: about BATCH_SECONDS of the line's rate, at most BATCH_MAX. A job costs a
# forked horse (~0.1 s of CPU) and a database connection, which 250 texts make small
# (measured: tests/bench/bench_broadcast_fanout.py, 50 → 250 moved the hand-over from 0.52 to
# 0.75 of the plain client); on a slow line a job is a few seconds of its rate, the time a job
# may hold a worker (batch.JOB_SECONDS), so a restart redoes little.
BATCH_SECONDS = 3
BATCH_MAX = 250
# A job may wait on Twilio for each text in turn (the gateway's timeout is 10 s, a normal
# answer ~0.2 s): this much per text, on top of RQ's usual 180 s, before RQ gives up on it.
SECONDS_PER_TEXT = 2


def start_broadcast(session: Session, *, group_id: int, body: str, idempotency_key: str | None = None,
                    requested_by: int | None = None) -> Broadcast:
    body = (body or "").strip()
    if not body or len(body) > MAX_BODY:
        raise InvalidText(f"a text must have 1 to {MAX_BODY} characters, this one has {len(body)}")
    if session.get(Group, group_id) is None:
        raise InvalidText(f"there is no group {group_id}")
    if sender_line(session, group_id) is None:
        raise InvalidText("this group has no line to send from: add one with `telline group add-line`")
    if idempotency_key:
        existing = session.scalar(sa.select(Broadcast).where(Broadcast.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    broadcast = Broadcast(group_id=group_id, body=body, idempotency_key=idempotency_key, requested_by=requested_by)
    session.add(broadcast)
    session.flush()
    enqueue_after_commit(session, fan_out, broadcast.id, queue="bulk")
    return broadcast


def sender_line(session: Session, group_id: int) -> Line | None:
    return session.scalar(sa.select(Line).where(Line.group_id == group_id).order_by(Line.id).limit(1))


def recipients(session: Session, group_id: int) -> sa.Select[int, str]:
    """Active members whose number's latest consent is an opt-in and can receive texts."""
    return (sa.select(Member.id, Member.phone)
            .join(Membership, (Membership.member_id == Member.id) & (Membership.group_id == group_id)
                  & (Membership.status == "active"))
            .where(consent.opted_in(Member.phone), Member.sms_status.not_in(UNTEXTABLE))
            .order_by(Member.id))


@durable
def fan_out(broadcast_id: int) -> int:
    """Write the per-member rows (once) and enqueue their batches. Safe to run again."""
    from telline.sms.batch import deliver_batch
    session = db.session()
    broadcast = session.get_one(Broadcast, broadcast_id)  # written before this job was sent
    line = sender_line(session, broadcast.group_id)
    if line is None:  # the group's lines were removed since it was asked for: nothing can send it
        log.warning("broadcast not sent: its group has no line", extra={"broadcast_id": broadcast.id})
        return 0
    measured = segments.measure(broadcast.body)
    prefix = f"broadcast:{broadcast.id}:"
    done = set(session.scalars(sa.select(Message.member_id).where(Message.broadcast_id == broadcast.id)))
    rows = [dict(direction="outbound", status="pending", line_id=line.id, member_id=member_id,
                 from_number=line.phone_number, to_number=number, body=broadcast.body, kind="broadcast",
                 broadcast_id=broadcast.id, idempotency_key=f"{prefix}{member_id}",
                 encoding=measured.encoding, segments=measured.count)
            for member_id, number in session.execute(recipients(session, broadcast.group_id))
            if member_id not in done]
    if rows:
        session.execute(sa.insert(Message), rows)
    pending = list(session.scalars(sa.select(Message.id).where(
        Message.broadcast_id == broadcast.id, Message.status == "pending").order_by(Message.id)))
    broadcast.recipients = len(done) + len(rows)
    size = batch_size(line.sms_rate, line.sms_rate_unit, measured.count)
    for i in range(0, len(pending), size):  # the batches' tasks commit with the rows they send
        enqueue_after_commit(session, deliver_batch, pending[i:i + size], queue="bulk", retry=retry_policy(),
                             timeout=batch_timeout(size))
    session.commit()
    log.info("broadcast fanned out", extra={"broadcast_id": broadcast.id, "recipients": broadcast.recipients,
                                            "batches": -(-len(pending) // size)})
    return len(pending)


def batch_timeout(texts: int) -> int:
    """Seconds RQ gives a batch job of this many texts before it gives up on it."""
    return 180 + texts * SECONDS_PER_TEXT


def batch_size(sms_rate: float, sms_rate_unit: str, segments_per_text: int) -> int:
    """Texts per batch job on a line of this rate."""
    per_second = sms_rate / rate.cost(sms_rate_unit, segments_per_text)
    return max(1, min(BATCH_MAX, math.floor(per_second * BATCH_SECONDS)))
