"""The job that hands one outbound text to Twilio — at most once, whatever happens.

A message row moves: pending → submitting → (Twilio's statuses: queued, sent, delivered…)
with side exits: deferred (quiet hours), retrying (Twilio said "later"), refused (we
would not send: opted out, not a textable number), failed (Twilio said no for good).

"submitting" is committed *before* the request goes out. A job that finds a row in
that state knows a request may have reached Twilio (a worker killed mid-request, a
connection dropped after sending): it looks for the message in Twilio's Messages
list before sending again. Creating a message is not idempotent; this is what makes
a resend safe.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Literal, cast

import sqlalchemy as sa
from flask import current_app
from rq import Retry
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from telline import db, phone, tasks
from telline.job_queues import queues
from telline.models import UNTEXTABLE, Line, Member, Message, MessageStatus, NumberStatus, QueueName, utcnow
from telline.sms import consent, quiet_hours, rate
from telline.sms.outbound import BACKOFF, retry_policy
from telline.sms.rate import SenderRateLimiter
from telline.sms.status import apply_known_events, reported
from telline.twilio.gateway import OutcomeUnknown, TwilioError, TwilioNotConfigured, gateway

log = logging.getLogger(__name__)

CLAIMABLE: tuple[MessageStatus, ...] = ("pending", "deferred", "retrying")
MAX_ATTEMPTS = len(BACKOFF) + 1
# A row claimed more recently than this may still have its request in flight elsewhere. A
# request gives up after the gateway's 10 s timeout, so a claim this old was left by a worker
# that died (the sweeper sends its task again within seconds): long enough to be safe, short
# enough that the text goes out within a minute of the crash.
CLAIM_TIMEOUT = dt.timedelta(seconds=30)
RATE_WAIT = 30.0  # seconds a job waits for the line's rate before handing its place back

OPTED_OUT = 21610
NOT_TEXTABLE: dict[int, NumberStatus] = {21211: "invalid", 21614: "landline", 21635: "landline"}
# What a try at a text ends in: the row's status, or "gone" (no such outbound row).
Outcome = MessageStatus | Literal["gone"]


class SendRetry(Exception):
    """Twilio asked us to slow down, failed on its side, or could not be reached: try later."""


@tasks.durable
def deliver(message_id: int) -> Outcome | Retry:
    """The job: send one text if it still needs sending; returns the row's status.

    A try that must be repeated (SendRetry, or an outcome still unknown) returns RQ's Retry
    instead of raising: RQ reschedules it with the backoff all the same, and an expected,
    handled failure costs one log line (ours) instead of a traceback per attempt."""
    try:
        return attempt(message_id)
    except (SendRetry, OutcomeUnknown):
        return retry_policy()


def attempt(message_id: int) -> Outcome:
    """One try at a text. Returns the row's status; raises SendRetry or OutcomeUnknown when it
    must be tried again (deliver turns them into RQ's Retry; a batch gives the text its own job)."""
    session = db.session()
    msg = session.get(Message, message_id)
    if msg is None or msg.direction != "outbound":
        return "gone"
    if msg.status == "submitting":
        lapses = claim_lapses(msg, utcnow())
        if lapses is not None:
            return _later(msg, max((lapses - utcnow()).total_seconds(), 1.0), "another attempt may still be in flight")
        if _reconcile(session, msg):
            return msg.status
    elif msg.status not in CLAIMABLE:
        return msg.status  # handed over, refused or failed already: a repeated job does nothing
    if msg.send_after and msg.send_after > utcnow() + dt.timedelta(seconds=1):
        return _later(msg, (msg.send_after - utcnow()).total_seconds(), "not before its time")

    line = session.get(Line, msg.line_id) if msg.line_id is not None else None
    member = session.get(Member, msg.member_id) if msg.member_id else None
    to = msg.to_number
    if not to:
        return _finish(session, msg, "refused", message="no number to text")
    if line is None:  # the line was removed since (its texts keep their rows, line_id NULL)
        return _finish(session, msg, "refused", message="its line is gone")
    refusal = _refusal(session, msg, to, member)
    if refusal:
        return _finish(session, msg, "refused", message=refusal)

    if not msg.urgent:
        until = _quiet_until(line, member)
        if until:
            msg.status, msg.send_after = "deferred", until
            tasks.enqueue_after_commit(session, deliver, msg.id, queue=queue_for(msg), at=until, retry=retry_policy())
            session.commit()
            log.info("text deferred by quiet hours", extra={"message_id": msg.id, "until": until.isoformat()})
            return msg.status

    session.commit()  # no transaction held while waiting for the rate or for Twilio
    if not limiter().acquire(line.phone_number, line.sms_rate, cost=rate.cost(line.sms_rate_unit, msg.segments),
                             timeout=RATE_WAIT):
        return _later(msg, 1.0, "line at its rate")

    if not _claim(session, msg):
        return msg.status
    try:
        sent = gateway().send_sms(from_=line.phone_number, to=to, body=msg.body,
                                  status_callback=status_callback_url())
    except (TwilioError, OutcomeUnknown) as exc:
        return after_failed_send(session, msg, exc)
    _handed_over(session, msg, sent.sid, sent.status)
    return msg.status


def claim_lapses(row: Message | sa.Row[*tuple[Any, ...]], now: dt.datetime) -> dt.datetime | None:
    """When a claimed ("submitting") row may be taken over, if that is still to come: until then
    its request may be in flight from the worker that claimed it. `row`: a Message or a row of its
    columns (status, attempts, updated_at)."""
    if row.status != "submitting" or not row.attempts:
        return None
    lapses: dt.datetime = row.updated_at + CLAIM_TIMEOUT
    return lapses if lapses > now else None


def after_failed_send(session: Session, msg: Message, exc: TwilioError | OutcomeUnknown) -> MessageStatus:
    """What a claimed message becomes when Twilio said no, or may not have heard."""
    if isinstance(exc, TwilioError):
        member = session.get(Member, msg.member_id) if msg.member_id else None
        return _refused_by_twilio(session, msg, member, exc)
    log.warning("send outcome unknown; reconciling", extra={"message_id": msg.id})
    time.sleep(0.5)  # give Twilio's list a moment to show a message it did create
    if _reconcile(session, msg):
        return msg.status
    raise exc  # still unknown: RQ retries; the next attempt reconciles again before sending


# --- steps ----------------------------------------------------------------------
def _refusal(session: Session, msg: Message, to: str, member: Member | None) -> str | None:
    if msg.kind != "opt_out_confirmation" and consent.is_opted_out(session, to):
        return "the number opted out"
    if member is not None and member.sms_status in UNTEXTABLE:
        return f"the number cannot receive texts ({member.sms_status})"
    return None


def _quiet_until(line: Line, member: Member | None) -> dt.datetime | None:
    group = line.group
    zone = quiet_hours.zone(group.timezone, member.timezone if member else None)
    return quiet_hours.next_allowed(utcnow(), zone, group.quiet_start, group.quiet_end)


def _claim(session: Session, msg: Message) -> bool:
    """Mark the row "submitting" — only if it is still as this job read it (compare-and-set
    on status and attempts): of two jobs racing for one message, exactly one sends."""
    claimed = db.rows_changed(session.execute(
        sa.update(Message)
        .where(Message.id == msg.id, Message.status == msg.status, Message.attempts == msg.attempts)
        .values(status="submitting", attempts=Message.attempts + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)))
    session.commit()
    if claimed != 1:
        session.refresh(msg)  # someone else moved it: report what it is now
        return False
    # Mirror the row without reading it back: a read would open a transaction (and on SQLite
    # take the write lock) for the whole Twilio request.
    set_committed_value(msg, "status", "submitting")
    set_committed_value(msg, "attempts", msg.attempts + 1)
    return True


def _reconcile(session: Session, msg: Message) -> bool:
    """Adopt the message Twilio already has for this row, if it has one."""
    line = session.get(Line, msg.line_id) if msg.line_id is not None else None
    session.commit()  # no transaction held while Twilio answers
    if line is None or not msg.to_number:
        return False  # nothing Twilio could have been sent for it
    found = gateway().find_messages(to=msg.to_number, from_=line.phone_number,
                                    sent_after=msg.created_at - dt.timedelta(days=1))
    taken = set(session.scalars(sa.select(Message.twilio_sid).where(
        Message.twilio_sid.in_([m.sid for m in found]))))
    earliest = msg.created_at - dt.timedelta(minutes=2)  # clocks differ a little
    for candidate in reversed(found):  # oldest first: the first send is the one to adopt
        created = candidate.date_created
        if (candidate.body == msg.body and candidate.sid not in taken
                and (created is None or created >= earliest)):
            log.info("reconciled: Twilio had the message", extra={"message_id": msg.id})
            _handed_over(session, msg, candidate.sid, candidate.status)
            return True
    return False


def _handed_over(session: Session, msg: Message, sid: str, status: str | None) -> None:
    msg.twilio_sid, msg.status, msg.sent_at = sid, reported(status), utcnow()
    msg.error_code = msg.error_message = None
    session.commit()  # the SID first, then the callbacks that came before it (telline.sms.status)
    apply_known_events(session, msg)
    session.commit()
    log.info("text handed to Twilio", extra={"message_id": msg.id, "to": phone.mask(msg.to_number),
                                             "segments": msg.segments})


def _refused_by_twilio(session: Session, msg: Message, member: Member | None, exc: TwilioError) -> MessageStatus:
    msg.error_code, msg.error_message = exc.code, exc.message[:255]
    if isinstance(exc, TwilioNotConfigured):  # not sent, and not retried: the row says why
        return _finish(session, msg, "refused", message=f"not sent: {exc.message}")
    if exc.code == OPTED_OUT:
        if msg.to_number:  # always, for a text that was sent
            consent.record(session, msg.to_number, consent.OPT_OUT, "carrier", detail="Twilio error 21610")
        return _finish(session, msg, "refused", code=exc.code, message="the number opted out (21610)")
    if exc.code in NOT_TEXTABLE:
        if member is not None:
            member.sms_status, member.sms_status_detail = NOT_TEXTABLE[exc.code], f"Twilio error {exc.code}"
        return _finish(session, msg, "failed", code=exc.code, message=exc.message)
    if exc.retryable and msg.attempts < MAX_ATTEMPTS:
        msg.status = "retrying"
        session.commit()
        log.warning("could not reach Twilio; will retry" if exc.unreachable else "Twilio asked to retry",
                    extra={"message_id": msg.id, "status": exc.status, "code": exc.code, "error": exc.message,
                           "attempt": msg.attempts})
        raise SendRetry(str(exc)) from exc
    return _finish(session, msg, "failed", code=exc.code, message=exc.message)


def _finish(session: Session, msg: Message, status: MessageStatus, *, code: int | None = None,
            message: str = "") -> MessageStatus:
    msg.status, msg.error_code, msg.error_message = status, code, message[:255]
    session.commit()
    log.info("text not sent", extra={"message_id": msg.id, "status": status, "reason": message})
    return status


def _later(msg: Message, seconds: float, why: str) -> MessageStatus:
    session = db.session()
    tasks.enqueue_after_commit(session, deliver, msg.id, queue=queue_for(msg),
                               at=utcnow() + dt.timedelta(seconds=seconds), retry=retry_policy())
    session.commit()
    log.info("send put back", extra={"message_id": msg.id, "reason": why})
    return msg.status


def queue_for(msg: Message | sa.Row[*tuple[Any, ...]]) -> QueueName:
    return "urgent" if msg.urgent else "bulk" if msg.broadcast_id else "default"


def status_callback_url() -> str | None:
    public = current_app.config["TELLINE"].public_url
    return f"{public}/twilio/sms/status" if public else None


def limiter() -> SenderRateLimiter:
    key = "telline.sms_rate_limiter"
    if key not in current_app.extensions:
        current_app.extensions[key] = SenderRateLimiter(queues().connection)
    return cast(SenderRateLimiter, current_app.extensions[key])
