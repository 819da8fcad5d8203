"""Reproduce: jobs from enqueue_after_commit() reach Redis BEFORE the commit when the
transaction uses savepoints (send_text does: session.begin_nested()).

    .venv/bin/python tests/bench/repro_enqueue_before_commit.py [--redis-url redis://127.0.0.1:6379/11]

SQLAlchemy fires the Session "after_commit" event for nested transactions too
(SessionTransaction.commit: `if self._parent is None or self.nested: … after_commit`),
and telline.job_queues._send_pending sends every pending job on it. So in a transaction
that calls send_text() three times, text 1's job is sent when text 2's savepoint is
released — before the rows are committed. A worker that picks it up then finds no
row, deliver() returns "gone", and that text is never sent (seen in
bench_rate_pipeline.py --jobs single --enqueue-as-is: 289 of 300 jobs "gone").

Prints the queue length after each send_text (before the commit) and after the
commit, as is and with the one-line guard `if session.in_nested_transaction(): return`
in the listener. Uses a throwaway SQLite file and flushes the given Redis db.
Exit status 0 when no job reaches Redis before the commit (fixed in 962d190, which
added exactly that guard; this script now guards against a regression).
"""

from __future__ import annotations

import argparse
import sys

import _harness as h
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session


def run(redis_url: str) -> list[int]:
    from telline import db
    from telline.job_queues import queues
    from telline.models import Line
    from telline.sms.outbound import send_text
    seen = []
    with h.fresh_database("sqlite") as url:
        h.flush_redis(redis_url)
        app = h.app_for(url, redis_url, "http://127.0.0.1:9")
        with app.app_context():
            h.seed(db.database().engine, 3, sms_rate=1)
            session = db.session()
            line = session.scalars(sa.select(Line)).one()
            for i in range(3):
                send_text(session, line=line, to=f"+1617000000{i}", body="x", idempotency_key=f"repro:{i}")
                seen.append(queues()["default"].count)
            session.commit()
            seen.append(queues()["default"].count)
        h.flush_redis(redis_url)
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()
    import telline.job_queues as tq
    as_is = run(args.redis_url)
    print(f"as is:      jobs in Redis after send_text 1, 2, 3 (uncommitted): {as_is[:3]}; after commit: {as_is[3]}")

    original = tq._send_pending
    event.remove(Session, "after_commit", original)

    def guarded(session):
        if session.in_nested_transaction():
            return  # a SAVEPOINT was released, not the transaction: wait for the real commit
        original(session)
    event.listen(Session, "after_commit", guarded)
    try:
        fixed = run(args.redis_url)
    finally:
        event.remove(Session, "after_commit", guarded)
        event.listen(Session, "after_commit", original)
    print(f"with guard: jobs in Redis after send_text 1, 2, 3 (uncommitted): {fixed[:3]}; after commit: {fixed[3]}")
    return 0 if as_is[:3] == [0, 0, 0] else 1


if __name__ == "__main__":
    sys.exit(main())
