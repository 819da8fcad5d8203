"""Benchmark reminders: the scheduling tick against what is stored, and a burst of 10,000 due at once.

    .venv/bin/python tests/bench/bench_reminders.py tick [--db postgres|sqlite|both] [--ticks 40]
    .venv/bin/python tests/bench/bench_reminders.py burst [--db sqlite|postgres] [--kill]
        [--latency 200 --jitter 50 | --fast]

tick: the cron's reminders.tick (plan, then claim what is due) run for --ticks simulated minutes in a
row on two stores that have the same work due each minute:
- small: 30 daily series (20 groups, 5 members each) whose meetings are 20–49 minutes away, so
  each minute about one 15-minute reminder falls due (claimed) and about one series' window moves
  (re-planned: its meeting fifteen days on gets its rows);
- large: the same, plus 3,572 daily series whose next meeting is 36 hours away, with 100,016 future
  reminder rows (14 meetings × 2 offsets each, planned) and 21,432 past occurrences stored.
Each tick is timed from the call to plan() to claim_due()'s commit; printed: median, p10–p90,
min–max, and what the ticks did (rows planned, reminders claimed). The claimed reminders' fan_out
tasks go to a private redis-server (no worker runs them). Its claim: the large store's tick costs
what the small one's does, because it reads only the series whose window moved and the rows due.

burst: see run_burst's docstring.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time

import _harness as h
import sqlalchemy as sa

FILLER_SERIES = 3572  # × 14 meetings × 2 offsets ≈ 100,000 future reminders
FILLER_GROUPS = 100
OCCURRENCES_PER_FILLER = 6  # ≈ 21,000 past meetings


def spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=10)
    return (f"median {statistics.median(values) * 1e3:.1f} ms, p10–p90 {q[0] * 1e3:.1f}–{q[-1] * 1e3:.1f} ms, "
            f"min–max {min(values) * 1e3:.1f}–{max(values) * 1e3:.1f} ms")


# --- tick ------------------------------------------------------------------------------------------
def _groups(engine: sa.Engine, n: int, members: int, first_member: int) -> list[tuple[int, int]]:
    return [h.seed(engine, members, 10, first_member=first_member + k * members) for k in range(n)]


def seed_due(engine: sa.Engine, base: dt.datetime) -> None:
    """30 daily series, meetings 20–49 minutes after base, over 20 groups."""
    from telline.models import MeetingSeries
    groups = _groups(engine, 20, 5, 0)
    with engine.begin() as conn:
        conn.execute(sa.insert(MeetingSeries), [dict(
            group_id=groups[i % 20][0], line_id=groups[i % 20][1], title=f"due {i}", timezone="UTC",
            first_start=base + dt.timedelta(minutes=20 + i), rrule="FREQ=DAILY", duration_minutes=60,
            access_code=f"{100000 + i}", host_pin=f"{900000 + i}", reminder_offsets=[1440, 15])
            for i in range(30)])


def seed_filler(engine: sa.Engine, base: dt.datetime) -> None:
    """3,572 daily series meeting from 36 h after base (none of their reminders is due in the run, nor
    does their window move: it does 12 h after base), their 100,000 reminders planned as the tick
    would have, and 21,000 meetings in the past."""
    from telline.models import MeetingOccurrence, MeetingSeries, OccurrenceStatus, Reminder
    from telline.scheduling.reminders import HORIZON
    groups = _groups(engine, FILLER_GROUPS, 20, 10_000)
    start = base + dt.timedelta(hours=36)
    first = start - dt.timedelta(days=OCCURRENCES_PER_FILLER + 1)
    meetings = [start + dt.timedelta(days=d) for d in range(14)]
    assert meetings[-1] <= base + HORIZON < meetings[-1] + dt.timedelta(days=1)
    with engine.begin() as conn:
        ids = conn.execute(sa.insert(MeetingSeries).returning(MeetingSeries.id), [dict(
            group_id=groups[i % FILLER_GROUPS][0], line_id=groups[i % FILLER_GROUPS][1], title=f"filler {i}",
            timezone="UTC", first_start=first, rrule="FREQ=DAILY", duration_minutes=60,
            access_code=f"{200000 + i}", host_pin=f"{600000 + i}", reminder_offsets=[1440, 15],
            reminders_planned_until=meetings[-1] + dt.timedelta(days=1)) for i in range(FILLER_SERIES)]).scalars().all()
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            conn.execute(sa.insert(Reminder), [dict(
                series_id=sid, original_start=m, starts_at=m, offset_minutes=offset,
                due_at=m - dt.timedelta(minutes=offset), state="pending")
                for sid in part for m in meetings for offset in (1440, 15)])
            conn.execute(sa.insert(MeetingOccurrence), [dict(
                series_id=sid, original_start=first + dt.timedelta(days=d), starts_at=first + dt.timedelta(days=d),
                ends_at=first + dt.timedelta(days=d, hours=1), status=OccurrenceStatus.ENDED,
                conference_name=f"bench-{sid}-{d}") for sid in part for d in range(OCCURRENCES_PER_FILLER)])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")


def run_tick(kind: str, large: bool, ticks: int, redis_url: str) -> dict:
    from telline import db
    from telline.models import MeetingOccurrence, Reminder
    from telline.scheduling import reminders
    base = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    with h.fresh_database(kind) as url:
        h.flush_redis(redis_url)
        app = h.app_for(url, redis_url, "http://127.0.0.1:9")
        with app.app_context():
            engine = db.database().engine
            seed_due(engine, base)
            if large:
                seed_filler(engine, base)
            session = db.session()
            reminders.plan(session, base)  # the due set's rows, as the ticks before would have written
            stored = session.scalar(sa.select(sa.func.count(Reminder.id)).where(Reminder.state == "pending"))
            occurrences = session.scalar(sa.select(sa.func.count(MeetingOccurrence.id)))
            session.rollback()
            times, planned, claimed = [], 0, 0
            for k in range(1, ticks + 1):
                now = base + dt.timedelta(minutes=k)
                t0 = time.perf_counter()
                planned += reminders.plan(session, now)
                claimed += reminders.claim_due(session, now)
                times.append(time.perf_counter() - t0)
            session.close()
        app.extensions["telline.db"].dispose()
    return dict(times=times, planned=planned, claimed=claimed, stored=stored, occurrences=occurrences)


def tick_mode(args) -> int:
    from telline import localredis
    server = localredis.start_private()
    try:
        for kind in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
            for large in (False, True):
                r = run_tick(kind, large, args.ticks, server.url)
                print(f"[{kind}, {'large' if large else 'small'}: {r['stored']:,} pending reminders, "
                      f"{r['occurrences']:,} occurrences stored] {args.ticks} ticks: {spread(r['times'])}; "
                      f"planned {r['planned']} rows, claimed {r['claimed']} reminders", flush=True)
    finally:
        server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    tick = sub.add_parser("tick")
    tick.add_argument("--db", choices=["postgres", "sqlite", "both"], default="both")
    tick.add_argument("--ticks", type=int, default=40)
    args = parser.parse_args()
    if args.mode == "tick":
        return tick_mode(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
