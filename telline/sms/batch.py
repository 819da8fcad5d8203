"""A broadcast's texts handed to Twilio a batch at a time: deliver()'s rules, fewer round trips,
several sends in flight.

deliver() spends eight statements and three commits on a text and waits for Twilio's answer
before the next. deliver_batch(ids) gives every text the same rules for less:

1. It reads the batch's rows, their line and group, and their members once, then ends the
   transaction: nothing is held open across the sends.
2. Texts that may not go yet (quiet hours, or not due) are deferred together: one UPDATE, and
   one batch job for the moment they may go (when quiet hours end), not one job a text.
3. Anything else out of the ordinary goes through deliver() itself, one text at a time: a number
   flagged as not textable, an opt-out confirmation (the one text sent to an opted-out number),
   a row left "submitting" by a worker that died (deliver() looks for it at Twilio first).
4. The rest is claimed a chunk at a time by one compare-and-set UPDATE … RETURNING id that
   takes only rows still as read (status and attempts) AND whose number's latest consent is
   not an opt-out: consent is checked at send time, in the claim's own statement. A chunk is
   claimed only when its first text's slot is near (AHEAD), so a claim is at most a moment old
   when its text goes. A row the claim left goes through deliver(), which says why.
5. Each claimed text books its slot in the line's rate and goes to the send pool
   (telline.sms.send_pool), which sends it at that slot — several in flight at once, so Twilio's
   0.1–0.3 s per answer does not cap the line. The SIDs come back to this thread, which writes
   them a chunk at a time (one executemany, one commit).
6. A job books sends for JOB_SECONDS at most; what is left goes to a new batch job at the back
   of the bulk queue. No bulk job holds a worker for long, and urgent work finds one free.

A worker killed mid-batch leaves rows "submitting"; the job's retry hands them to deliver(),
which looks for them in Twilio's Messages list before sending anything again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import heapq
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import db, phone, tasks
from telline.models import UNTEXTABLE, Group, Line, Member, Message, MessageEvent, utcnow
from telline.sms import consent, delivery, quiet_hours, rate, send_pool
from telline.sms.broadcast import batch_size, batch_timeout
from telline.sms.outbound import BACKOFF, retry_policy
from telline.sms.status import apply_known_events, reported
from telline.twilio.gateway import OutcomeUnknown, SentMessage, TwilioError

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.5  # texts claimed together: this much of the line's rate
AHEAD = 0.25  # a slot is booked (and its chunk claimed) at most this long before it comes
JOB_SECONDS = 3.0  # a job books sends for this long, then hands the rest to a new job
# Texts per second one job's send pool keeps up with: 32 threads (the default send_threads) at
# Twilio's 0.1-0.3 s a send, with room to spare. enqueue_by_line puts lines together up to this.
JOB_TEXTS_PER_SECOND = 100.0


@tasks.durable
def deliver_batch(message_ids: list[int]) -> dict[str, int]:
    """Send a batch of texts (a broadcast's). Returns how many ended in each status ("pending":
    handed to the next batch job)."""
    session = db.session()
    tally: Counter[str] = Counter()
    plan = _sort(session, message_ids)
    tally.update(plan.done)
    if plan.in_flight:  # claimed by a worker that died moments ago (the sweeper sent this batch again)
        _later(session, plan.in_flight)
        tally["submitting"] += len(plan.in_flight)
    for (until, size), rows in plan.deferred.items():
        _defer(session, until, size, rows, tally)
    sending = _Sending(session, tally)
    try:
        sending.one_by_one(plan.by_deliver)
        sending.lines(plan.ready)
    finally:
        sending.finish()
    return dict(tally)


def enqueue_by_line(session: Session, texts: dict[int, list[int]], texts_per_second: dict[int, float],
                    at: dt.datetime | None = None) -> int:
    """Batch jobs for texts of several lines ({line id: message ids}), committed with the caller's
    transaction; returns how many. Lines go together, whole, until their rates add up to what one
    job can keep in flight (JOB_TEXTS_PER_SECOND): a job then sends on all its lines at once, and
    two jobs never wait for the same line. A job hands what it had no time for to the next."""
    jobs, batch, batch_rate = 0, [], 0.0
    for line_id in sorted(texts):
        batch.extend(texts[line_id])
        batch_rate += texts_per_second[line_id]
        if batch_rate >= JOB_TEXTS_PER_SECOND or line_id == max(texts):
            tasks.enqueue_after_commit(session, deliver_batch, sorted(batch), queue="bulk", at=at,
                                       retry=retry_policy(), timeout=batch_timeout(len(batch)))
            jobs, batch, batch_rate = jobs + 1, [], 0.0
    return jobs


if TYPE_CHECKING:
    # The columns of a message, its line (and group) or its member that a batch reads once (_sort).
    Row = sa.Row[*tuple[Any, ...]]


@dataclasses.dataclass
class _Plan:
    ready: list[tuple[Row, Row]] = dataclasses.field(default_factory=list)  # to claim and send, with their line
    by_deliver: list[int] = dataclasses.field(default_factory=list)  # for deliver() to decide, one by one
    in_flight: dict[int, dt.datetime] = dataclasses.field(default_factory=dict)  # {id: when its claim lapses}
    # {(when they may go, texts per job): rows to defer until then}
    deferred: dict[tuple[dt.datetime, int], list[Row]] = dataclasses.field(default_factory=lambda: defaultdict(list))
    done: Counter[str] = dataclasses.field(default_factory=Counter)  # statuses of rows past sending


def _sort(session: Session, message_ids: list[int]) -> _Plan:
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
    plan = _Plan()
    for message_id in message_ids:
        row = rows.get(message_id)
        line = lines.get(row.line_id) if row else None
        member = members.get(row.member_id) if row and row.member_id else None
        lapses = delivery.claim_lapses(row, now) if row else None
        if lapses is not None:
            plan.in_flight[message_id] = lapses
        elif row is not None and row.direction == "outbound" and row.status not in (*delivery.CLAIMABLE, "submitting"):
            plan.done[row.status] += 1  # handed over, refused or failed already: a repeated job does nothing
        elif row is None or line is None or not _plain(row, member):
            plan.by_deliver.append(message_id)
        elif (until := _not_before(row, line, member, now)) is not None:
            plan.deferred[until, batch_size(line.sms_rate, line.sms_rate_unit, row.segments)].append(row)
        else:
            plan.ready.append((row, line))
    return plan


def _plain(row: Row, member: Row | None) -> bool:
    """Would deliver() simply claim and send this text, now or once it may go (consent apart,
    which the claim checks)?"""
    return not (row.direction != "outbound" or row.status not in delivery.CLAIMABLE or not row.to_number
                or row.kind == "opt_out_confirmation"
                or (member is not None and member.sms_status in UNTEXTABLE))


def _not_before(row: Row, line: Row, member: Row | None, now: dt.datetime) -> dt.datetime | None:
    """When this text may go, if not now: its own time (send_after), or the end of quiet hours."""
    if row.send_after is not None and row.send_after > now + dt.timedelta(seconds=1):
        return row.send_after  # type: ignore[no-any-return]
    if row.urgent:
        return None
    zone = quiet_hours.zone(line.timezone, member.timezone if member else None)
    return quiet_hours.next_allowed(now, zone, line.quiet_start, line.quiet_end)


def _later(session: Session, in_flight: dict[int, dt.datetime]) -> None:
    """Come back for these rows, together, once the last of their claims lapses: then deliver()
    looks for each in Twilio's Messages list before anything is sent again."""
    ids = sorted(in_flight)
    tasks.enqueue_after_commit(session, deliver_batch, ids, queue="bulk", at=max(in_flight.values()),
                               retry=retry_policy(), timeout=batch_timeout(len(ids)))
    session.commit()


def _defer(session: Session, until: dt.datetime, size: int, rows: list[Row], tally: Counter[str]) -> None:
    """Mark these rows deferred until `until` and give them batch jobs for then — compare-and-set, so
    a row another job has moved since it was read is left to that job."""
    deferred = sorted(session.scalars(
        sa.update(Message)
        .where(sa.tuple_(Message.id, Message.status, Message.attempts).in_(
            [(r.id, r.status, r.attempts) for r in rows]))
        .values(status="deferred", send_after=until, updated_at=utcnow())
        .returning(Message.id)
        .execution_options(synchronize_session=False)))
    for i in range(0, len(deferred), size):
        ids = deferred[i:i + size]
        tasks.enqueue_after_commit(session, deliver_batch, ids, queue="bulk", at=until, retry=retry_policy(),
                                   timeout=batch_timeout(len(ids)))
    session.commit()
    tally["deferred"] += len(deferred)
    if len(deferred) < len(rows):
        tally["taken"] += len(rows) - len(deferred)  # moved by another job since they were read
    log.info("texts deferred", extra={"texts": len(deferred), "until": until.isoformat()})


class _Sending:
    """One job's sends: booked and handed to the pool a chunk at a time, their answers written as
    they come; what the job had no time for goes to the next job."""

    def __init__(self, session: Session, tally: Counter[str]):
        self.session, self.tally = session, tally
        self.deadline = time.monotonic() + JOB_SECONDS
        self.pool = send_pool.pool()
        self.limiter = delivery.limiter()
        self.callback = delivery.status_callback_url()
        self.in_flight: list[tuple[Row, Future[SentMessage]]] = []
        self.failed: list[tuple[int, TwilioError | OutcomeUnknown]] = []  # sent, and Twilio said no or did not answer
        self.unsent: list[Row] = []  # claimed, never sent: given back as they were, then to the next job
        self.not_claimed: list[int] = []  # opted out since they were read, or taken: deliver() says which
        self.left: list[int] = []  # never claimed: to the next job
        self.halted = False  # out of time, or a send found no slot after its thread woke late: the rest goes back
        self.blocked: dict[int, float] = {}  # line id → seconds until its next slot, past this job's time
        self.last_slot: dict[int, float] = {}  # line id → time.monotonic() of the latest slot booked on it
        self.rebooked_before = self.pool.rebooked

    def stopped(self) -> bool:
        self.halted = self.halted or time.monotonic() >= self.deadline
        return self.halted

    def one_by_one(self, message_ids: list[int]) -> None:
        for i, message_id in enumerate(message_ids):
            if self.stopped():
                self.left.extend(message_ids[i:])
                return
            self.tally[_one_by_one(self.session, message_id, delivery.attempt)] += 1

    def lines(self, ready: list[tuple[Row, Row]]) -> None:
        """Every line's chunks, the lines side by side: the chunk whose line's slot comes first goes
        next, so one line waiting for its rate does not hold up the others (a batch of reminders
        spans many lines, each at a few texts a second)."""
        work: dict[int, tuple[Row, list[list[Row]]]] = {}
        for line, chunk in _chunks(ready):
            work.setdefault(line.id, (line, []))[1].append(chunk)
        soonest = [(self._next_slot(line, chunks[0]), line_id) for line_id, (line, chunks) in work.items()]
        heapq.heapify(soonest)
        while soonest:
            _, line_id = heapq.heappop(soonest)
            line, chunks = work[line_id]
            self.chunk(line, chunks.pop(0))
            if not chunks:
                continue
            if self.stopped() or line_id in self.blocked:  # out of time, or no slot in it: the next job
                self.left.extend(r.id for chunk in chunks for r in chunk)
            else:
                heapq.heappush(soonest, (self._next_slot(line, chunks[0]), line_id))

    def _next_slot(self, line: Row, chunk: list[Row]) -> float:
        """time.monotonic() of the line's next free slot for this chunk's first text."""
        return time.monotonic() + self.limiter.peek(line.phone_number, line.sms_rate,
                                                    rate.cost(line.sms_rate_unit, chunk[0].segments))

    def chunk(self, line: Row, chunk: list[Row]) -> None:
        if not self.stopped():  # claim when the line's next slot is near: consent is checked then
            early = self._next_slot(line, chunk) - AHEAD - time.monotonic()
            if early > self.deadline - time.monotonic():
                self.blocked[line.id] = early
            elif early > 0:
                time.sleep(early)
        if self.stopped() or line.id in self.blocked:
            self.left.extend(r.id for r in chunk)
            return
        claimed = _claim(self.session, chunk)
        for row in chunk:
            if row.id not in claimed:
                self.not_claimed.append(row.id)
            elif self.halted or line.id in self.blocked:  # the rest of the chunk goes back
                self.unsent.append(row)
            else:
                self._send(line, row)
        self._collect(wait=False)

    def _send(self, line: Row, row: Row) -> None:
        self._wait_for_near_slot(line.id)
        book = functools.partial(self.limiter.book, line.phone_number, line.sms_rate,
                                 rate.cost(line.sms_rate_unit, row.segments))
        self.pool.reserve()
        booked, wait = book(max_wait=max(0.0, self.deadline - time.monotonic()))
        if not booked:  # the line is busy elsewhere until after this job's time: the next job goes on
            self.pool.unreserve()
            self.unsent.append(row)
            self.blocked[line.id] = wait
            return
        slot = self.last_slot[line.id] = time.monotonic() + wait
        text = send_pool.Text(line.phone_number, row.to_number, row.body, self.callback)
        self.in_flight.append((row, self.pool.send_at(slot, text, functools.partial(book, max_wait=JOB_SECONDS))))

    def _wait_for_near_slot(self, line_id: int) -> None:
        """Book (and claim) no further ahead than AHEAD: a claim checks consent, so it must be recent
        when its text goes."""
        early = self.last_slot.get(line_id, 0.0) - AHEAD - time.monotonic()
        if early > 0:
            time.sleep(early)

    def _collect(self, *, wait: bool) -> None:
        """Write the answers that have come (all of them, with wait)."""
        handed: list[dict[str, Any]] = []
        pending: list[tuple[Row, Future[SentMessage]]] = []
        for row, future in self.in_flight:
            if not (wait or future.done()):
                pending.append((row, future))
                continue
            try:
                sent = future.result()
            except send_pool.NoSlot:
                self.unsent.append(row)
                self.halted = True
            except (TwilioError, OutcomeUnknown) as exc:
                self.failed.append((row.id, exc))
            except Exception as exc:  # a fault of ours: whether it reached Twilio is unknown
                log.exception("send failed unexpectedly", extra={"message_id": row.id})
                self.failed.append((row.id, OutcomeUnknown(f"{type(exc).__name__}: {exc}")))
            else:
                status = reported(sent.status)
                handed.append(dict(id=row.id, twilio_sid=sent.sid, status=status, sent_at=utcnow()))
                self.tally[status] += 1
                log.info("text handed to Twilio", extra={"message_id": row.id, "to": phone.mask(row.to_number),
                                                         "segments": row.segments})
        self.in_flight = pending
        _record(self.session, handed)

    def resume_in(self) -> float:
        """Seconds before the next job may find a slot: at once if a line was left for lack of time,
        else when the first of the lines that had no slot has one."""
        return 0.0 if self.halted else min(self.blocked.values(), default=0.0)

    def finish(self) -> None:
        """Wait for the sends in flight and write their answers; then the texts that need more."""
        try:
            self._collect(wait=True)
        finally:
            _release(self.session, self.unsent)
        for message_id, exc in self.failed:
            self.tally[_one_by_one(self.session, message_id,
                                   functools.partial(_after_failed_send, self.session, exc=exc))] += 1
        self.one_by_one(self.not_claimed)
        rest = sorted(self.left + [r.id for r in self.unsent])
        if rest:
            tasks.enqueue_after_commit(self.session, deliver_batch, rest, queue="bulk", retry=retry_policy(),
                                       at=utcnow() + dt.timedelta(seconds=self.resume_in()),
                                       timeout=batch_timeout(len(rest)))
            self.session.commit()
            self.tally["pending"] += len(rest)
            log.info("batch continues in a new job", extra={"texts": len(rest)})
        if self.pool.rebooked > self.rebooked_before:
            log.info("sends booked again after a late start",
                     extra={"texts": self.pool.rebooked - self.rebooked_before})


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
