"""A broadcast's texts handed to Twilio a batch at a time: deliver()'s rules, fewer round trips.

deliver() spends eight statements and three commits on a text, which holds a broadcast
far below the rate Twilio takes. deliver_batch(ids) gives every text the same rules for less:

1. It reads the batch's rows, their line and group, and their members once, then ends the
   transaction: nothing is held open across the sends.
2. Anything out of the ordinary goes through deliver() itself, one text at a time: a row
   not claimable now or not yet due, quiet hours, a number flagged as not textable, an
   opt-out confirmation (the one text sent to an opted-out number).
3. The rest is claimed a chunk at a time by one compare-and-set UPDATE … RETURNING id that
   takes only rows still as read (status and attempts) AND whose number's latest consent
   is not an opt-out. Consent is still checked at send time, in the claim's own statement.
   A row the claim left goes through deliver(), which says why (opted out, taken).
4. Each claimed text waits for its slot in the line's rate and is sent; the chunk's SIDs
   are then written by one executemany and one commit.

A chunk is at most CHUNK_SECONDS of the line's rate: a single text on a 1/s long code, so
there a text is claimed just before it is sent, as in deliver(). A worker killed mid-chunk
leaves rows "submitting"; the job's retry hands them to deliver(), which looks for them in
Twilio's Messages list before sending anything again.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import db, phone, tasks
from telline.models import Group, Line, Member, Message, MessageEvent, utcnow
from telline.sms import consent, delivery, rate
from telline.sms.broadcast import SECONDS_PER_TEXT
from telline.sms.outbound import BACKOFF, retry_policy
from telline.sms.quiet_hours import next_allowed
from telline.sms.status import apply_known_events, reported
from telline.twilio.gateway import OutcomeUnknown, TwilioError, gateway

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.5  # the longest a claimed text waits for its rate slot


@tasks.durable
def deliver_batch(message_ids: list[int]) -> dict[str, int]:
    """Send a batch of texts (a broadcast's). Returns how many ended in each status."""
    session = db.session()
    tally: Counter[str] = Counter()
    ready, by_deliver, in_flight = _sort(session, message_ids)
    if in_flight:  # claimed by a worker that died moments ago (the sweeper sent this batch again)
        _later(session, in_flight)
        tally["submitting"] += len(in_flight)
    for message_id in by_deliver:
        tally[_one_by_one(session, message_id, delivery.attempt)] += 1
    for line, chunk in _chunks(ready):
        _send_chunk(session, line, chunk, tally)
    return dict(tally)


if TYPE_CHECKING:
    # The columns of a message, its line (and group) or its member that a batch reads once (_sort).
    Row = sa.Row[*tuple[Any, ...]]


def _sort(session: Session, message_ids: list[int]) -> tuple[list[tuple[Row, Row]], list[int],
                                                            dict[int, dt.datetime]]:
    """(rows ready to claim and send, with their line), (ids that deliver() must decide), and
    {id: when its claim lapses} for rows another worker may still be sending."""
    rows = {r.id: r for r in session.execute(sa.select(
        Message.id, Message.direction, Message.status, Message.attempts, Message.to_number, Message.body,
        Message.line_id, Message.member_id, Message.urgent, Message.kind, Message.segments,
        Message.broadcast_id, Message.send_after, Message.updated_at).where(Message.id.in_(message_ids)))}
    lines = {r.id: r for r in session.execute(sa.select(
        Line.id, Line.phone_number, Line.sms_rate, Line.sms_rate_unit,
        Group.timezone, Group.quiet_start, Group.quiet_end).join(Group, Group.id == Line.group_id)
        .where(Line.id.in_({r.line_id for r in rows.values()})))}
    members = {r.id: r for r in session.execute(sa.select(Member.id, Member.timezone, Member.sms_status).where(
        Member.id.in_({r.member_id for r in rows.values() if r.member_id})))}
    session.rollback()  # no snapshot (and on SQLite no lock) held across the sends

    now = utcnow()
    ready: list[tuple[Row, Row]] = []
    by_deliver: list[int] = []
    in_flight: dict[int, dt.datetime] = {}
    for message_id in message_ids:
        row = rows.get(message_id)
        line = lines.get(row.line_id) if row else None
        member = members.get(row.member_id) if row and row.member_id else None
        lapses = delivery.claim_lapses(row, now) if row else None
        if lapses is not None:
            in_flight[message_id] = lapses
        elif row is None or line is None or not _plain(row, line, member, now):
            by_deliver.append(message_id)
        else:
            ready.append((row, line))
    return ready, by_deliver, in_flight


def _later(session: Session, in_flight: dict[int, dt.datetime]) -> None:
    """Come back for these rows, together, once the last of their claims lapses: then deliver()
    looks for each in Twilio's Messages list before anything is sent again."""
    ids = sorted(in_flight)
    tasks.enqueue_after_commit(session, deliver_batch, ids, queue="bulk", at=max(in_flight.values()),
                               retry=retry_policy(), timeout=180 + len(ids) * SECONDS_PER_TEXT)
    session.commit()


def _plain(row: Row, line: Row, member: Row | None, now: dt.datetime) -> bool:
    """Would deliver() simply claim and send this text now (consent apart, which the claim checks)?"""
    if (row.direction != "outbound" or row.status not in delivery.CLAIMABLE or not row.to_number
            or row.kind == "opt_out_confirmation"):
        return False
    if row.send_after is not None and row.send_after > now + dt.timedelta(seconds=1):
        return False
    if member is not None and member.sms_status in ("invalid", "landline"):
        return False
    zone = ZoneInfo((member.timezone if member else None) or line.timezone)
    return bool(row.urgent) or next_allowed(now, zone, line.quiet_start, line.quiet_end) is None


def _chunks(ready: list[tuple[Row, Row]]) -> Iterator[tuple[Row, list[Row]]]:
    """Consecutive texts from one line, at most CHUNK_SECONDS of its rate each (at least one)."""
    i = 0
    while i < len(ready):
        line = ready[i][1]
        size = max(1, math.floor(line.sms_rate / rate.cost(line.sms_rate_unit, ready[i][0].segments)
                                 * CHUNK_SECONDS))
        chunk: list[Row] = []
        while i < len(ready) and len(chunk) < size and ready[i][1].id == line.id:
            chunk.append(ready[i][0])
            i += 1
        yield line, chunk


def _send_chunk(session: Session, line: Row, chunk: list[Row], tally: Counter[str]) -> None:
    claimed = _claim(session, chunk)
    handed: list[dict[str, Any]] = []
    untried = [r for r in chunk if r.id in claimed]  # in chunk order: the next to send is first
    line_busy = False
    try:
        for row in chunk:
            if row.id not in claimed:  # opted out since, or another job has it: deliver() says which
                tally[_one_by_one(session, row.id, delivery.attempt)] += 1
                continue
            line_busy = line_busy or not delivery.limiter().acquire(
                line.phone_number, line.sms_rate, cost=rate.cost(line.sms_rate_unit, row.segments),
                timeout=delivery.RATE_WAIT)
            if line_busy:
                continue  # the line is busy elsewhere: the rest goes back, each text to its own job
            untried.pop(0)
            try:
                sent = gateway().send_sms(from_=line.phone_number, to=row.to_number, body=row.body,
                                          status_callback=delivery.status_callback_url())
            except (TwilioError, OutcomeUnknown) as exc:
                _record(session, handed)
                tally[_one_by_one(session, row.id, functools.partial(_after_failed_send, session, exc=exc))] += 1
                continue
            status = reported(sent.status)
            handed.append(dict(id=row.id, twilio_sid=sent.sid, status=status, sent_at=utcnow()))
            tally[status] += 1
            log.info("text handed to Twilio", extra={"message_id": row.id, "to": phone.mask(row.to_number),
                                                     "segments": row.segments})
    finally:
        _record(session, handed)
        _release(session, untried)
    for row in untried:
        tasks.enqueue_after_commit(session, delivery.deliver, row.id, queue=delivery.queue_for(row),
                                   at=utcnow() + dt.timedelta(seconds=1), retry=retry_policy())
        tally[row.status] += 1
    session.commit()


def _claim(session: Session, chunk: list[Row]) -> set[int]:
    """Compare-and-set, as deliver()'s claim, for a whole chunk — with the consent check in it."""
    claimed = set(session.scalars(
        sa.update(Message)
        .where(sa.tuple_(Message.id, Message.status, Message.attempts).in_(
                   [(r.id, r.status, r.attempts) for r in chunk]),
               consent.not_opted_out(Message.to_number))
        .values(status="submitting", attempts=Message.attempts + 1, updated_at=utcnow())
        .returning(Message.id)
        .execution_options(synchronize_session=False)))
    session.commit()
    return claimed


def _record(session: Session, handed: list[dict[str, Any]]) -> None:
    """Write the SIDs Twilio gave, then apply any status callback that beat us to them."""
    if not handed:
        return
    now = utcnow()
    session.execute(sa.update(Message), [dict(h, updated_at=now, error_code=None, error_message=None)
                                         for h in handed])
    session.commit()  # the SIDs first, then the callbacks that came before them (telline.sms.status)
    sids = {h["twilio_sid"]: h["id"] for h in handed}
    for sid in session.scalars(sa.select(MessageEvent.twilio_sid).distinct()
                               .where(MessageEvent.twilio_sid.in_(sids))):
        apply_known_events(session, session.get_one(Message, sids[sid]))  # just written
    session.commit()
    handed.clear()


def _release(session: Session, rows: list[Row]) -> None:
    """Give back claimed rows that were never sent, as they were (no request went out for them)."""
    if rows:
        session.execute(sa.update(Message), [dict(id=r.id, status=r.status, attempts=r.attempts) for r in rows])
        session.commit()


def _after_failed_send(session: Session, message_id: int, exc: TwilioError | OutcomeUnknown) -> str:
    # A claimed row of this batch: it exists (rows are never deleted while claimed).
    return delivery.after_failed_send(session, session.get_one(Message, message_id), exc)


def _one_by_one(session: Session, message_id: int, step: Callable[[int], str]) -> str:
    """One text on its own terms: a text that needs a retry gets a retrying job of its own,
    so one refusal does not resend the rest of the batch."""
    try:
        return step(message_id)
    except (delivery.SendRetry, OutcomeUnknown, TwilioError):
        session.rollback()  # leave nothing half-done for the next text
        tasks.enqueue_after_commit(session, delivery.deliver, message_id, queue="bulk",
                                   at=utcnow() + dt.timedelta(seconds=BACKOFF[0]), retry=retry_policy())
        session.commit()
        return "retrying"
    finally:
        session.rollback()  # leave nothing half-done for the next text
