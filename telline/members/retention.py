"""The retention purge: the bodies of texts older than their group's message_retention_days are
blanked (the rows stay, with their status and times, for delivery reports and counts).

A text belongs to the group of its line; a text whose line is gone keeps the default retention. A
text not yet handed to Twilio keeps its body whatever its age: it is still to be sent.

Daily, from `telline cron` on the bulk lane (telline.worker.PERIODIC). Each group's cutoff is one
constant, so the old texts that still hold a body are read from the partial index
ix_messages_created_at_with_body (migration 0008) oldest first, a chunk at a time, each chunk its
own commit: a first run over years of texts never holds long locks, and a run cut short is taken
up by the next.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import db
from telline.members.erasure import UNSENT
from telline.models import DEFAULT_RETENTION_DAYS, Group, Line, Message, utcnow

log = logging.getLogger(__name__)
CHUNK = 1000


def purge_old_bodies(now: dt.datetime | None = None, chunk: int = CHUNK) -> int:
    """Blank the bodies past each group's retention; returns how many. Safe to run twice."""
    session = db.session()
    now = now or utcnow()
    lines_by_days: dict[int, list[int]] = defaultdict(list)
    lines_by_days[DEFAULT_RETENTION_DAYS].append(NO_LINE)
    for days, line_id in session.execute(sa.select(Group.message_retention_days, Line.id)
                                         .join(Line, Line.group_id == Group.id)):
        lines_by_days[days].append(line_id)
    purged = sum(_purge(session, now - dt.timedelta(days=days), line_ids, chunk)
                 for days, line_ids in sorted(lines_by_days.items()))
    log.info("old message bodies purged", extra={"purged": purged})
    return purged


NO_LINE = 0  # no line has this id: a text whose line was removed


def old_texts(cutoff: dt.datetime, line_ids: list[int], chunk: int) -> sa.Select[int]:
    """The oldest texts of these lines before the cutoff that still hold a body and are not still to
    be sent. Written for the partial index: `body <> ''` as the index says it (a literal, not a
    parameter, or neither planner can tell the index covers it), and the line through coalesce(),
    which the line_id index cannot answer — it would read every text of the line and sort them."""
    return (sa.select(Message.id)
            .where(Message.created_at < cutoff, Message.body != sa.literal_column("''"),
                   sa.func.coalesce(Message.line_id, NO_LINE).in_(line_ids), Message.status.not_in(UNSENT))
            .order_by(Message.created_at).limit(chunk))


def _purge(session: Session, cutoff: dt.datetime, line_ids: list[int], chunk: int) -> int:
    purged = 0
    while True:
        ids = list(session.scalars(old_texts(cutoff, line_ids, chunk)))
        if ids:
            # Not to be sent since the select (a retry claimed it): the update checks again.
            purged += db.rows_changed(session.execute(
                sa.update(Message).where(Message.id.in_(ids), Message.status.not_in(UNSENT)).values(body="")
                .execution_options(synchronize_session=False)))
        session.commit()
        if len(ids) < chunk:
            return purged
