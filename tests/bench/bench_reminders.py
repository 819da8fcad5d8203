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

burst: see run_burst's docstring. Checked from the stand-in's record (its receive times): every
member's text handed over once, none before the due time, and no line over its rate in any closed
1-second window [t, t + 1]; printed: when the first and the last went, texts/s, texts per 10 s.
Exit status 0 when all holds.
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


# --- burst -----------------------------------------------------------------------------------------
GROUPS, MEMBERS = 200, 50
# Each line's rate: three in four are long codes at 1 segment/s, one in four a toll-free number at
# 3 messages/s. A reminder here is one segment (GSM-7, 132 characters): the long codes need 50 s for
# their 50 texts, the toll-free lines 17 s; 300 texts/s in all at the start, 150/s after 17 s.
def line_rate(k: int) -> tuple[float, str]:
    return (3.0, "messages") if k % 4 == 3 else (1.0, "segments")


def run_burst(args, standin: h.StandInProcess, redis_url: str, kill: bool) -> dict:
    """10,000 reminders due at the same moment (T, 25 s after the set-up): 200 groups, each with its
    line (line_rate) and 50 opted-in members, each with a weekly series whose first meeting is at
    T + 15 min, reminded 15 minutes before. `telline cron --tick-every 5 --sweep-every 5` (the tick,
    a minute in production, every 5 s so the bench does not wait for the next minute) and 2 ×
    `telline worker --simple` (every queue, urgent first, as deployed). kill: once half the texts
    are handed over, one worker (its whole process tree) and the cron are killed with SIGKILL and
    started again 1 s later."""
    import os
    import signal
    import subprocess
    import tempfile

    from telline import db
    from telline.models import Message, Reminder
    from telline.scheduling.series import create_series
    from tests.processes import process_tree
    with h.fresh_database(args.db) as url:
        h.flush_redis(redis_url)
        standin.control.reset()
        app = h.app_for(url, redis_url, standin.url)
        with app.app_context():
            engine = db.database().engine
            session = db.session()
            from telline.models import Group, Line
            for k in range(GROUPS):
                per_second, unit = line_rate(k)
                h.seed(engine, MEMBERS, per_second, unit, first_member=k * MEMBERS)
            due = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=25)
            for group in session.scalars(sa.select(Group).order_by(Group.id)):
                line = session.scalar(sa.select(Line).where(Line.group_id == group.id))
                create_series(session, group=group, line=line, title="burst", reminder_offsets=[15],
                              first_start_local=(due + dt.timedelta(minutes=15)).replace(tzinfo=None))
            session.commit()
            rates = {phone: (rate, unit) for phone, rate, unit in session.execute(
                sa.select(Line.phone_number, Line.sms_rate, Line.sms_rate_unit))}
            env = dict(os.environ, TELLINE_DATABASE_URL=url, TELLINE_REDIS_URL=redis_url,
                       TWILIO_API_BASE_URL=standin.url, TWILIO_ACCOUNT_SID=h.ACCOUNT_SID,
                       TWILIO_AUTH_TOKEN=h.AUTH_TOKEN, TELLINE_SECRET_KEY=h.SECRET_KEY, TELLINE_LOG_LEVEL="WARNING")
            cron_argv = [h.PYTHON, "-m", "telline", "cron", "--tick-every", "5", "--sweep-every", "5"]
            worker_argv = [h.PYTHON, "-m", "telline", "worker", "--simple"]

            logs = []

            def start(argv):
                logs.append(tempfile.TemporaryFile())
                return subprocess.Popen(argv, cwd=h.ROOT, env=env, stdout=logs[-1], stderr=subprocess.STDOUT,
                                        start_new_session=True)
            procs = [start(cron_argv), start(worker_argv), start(worker_argv)]
            cpu = h.CpuMeter(workers=[p.pid for p in procs[1:]], cron=[procs[0].pid], standin=[standin.proc.pid])
            load = os.getloadavg()[0]
            total, killed_at, stalled = GROUPS * MEMBERS, None, False
            last_count, last_change = 0, time.monotonic()
            try:
                while True:
                    time.sleep(0.5)
                    session.rollback()
                    count = session.scalar(sa.select(sa.func.count(Message.id)).where(
                        Message.kind == "reminder", Message.twilio_sid.is_not(None)))
                    session.rollback()  # SQLite: a transaction here holds the write lock (BEGIN IMMEDIATE)
                    if count != last_count:
                        last_count, last_change = count, time.monotonic()
                    if count >= total:
                        break
                    if time.monotonic() - last_change > 60 or (
                            args.max_seconds and time.time() - due.timestamp() > args.max_seconds):
                        stalled = True
                        break
                    if kill and killed_at is None and count >= total // 2:
                        victims = [procs[0], procs[1]]  # the cron and a worker
                        pids = [pid for p in victims for pid in process_tree(p.pid)]
                        for pid in pids:
                            os.kill(pid, signal.SIGKILL)
                        for p in victims:
                            p.wait()
                        killed_at = (time.time(), count)
                        time.sleep(1)
                        procs[0], procs[1] = start(cron_argv), start(worker_argv)
            finally:
                usage = cpu.stop()
                h.stop_processes(procs)
            if stalled:
                for log in logs:
                    log.seek(0)
                    print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)
            session.rollback()
            states = dict(session.execute(sa.select(Reminder.state, sa.func.count()).group_by(Reminder.state)).all())
            session.close()
        app.extensions["telline.db"].dispose()
    posts = [r for r in standin.control.requests(method="POST", path_suffix="Messages.json") if r.status == 201]
    return dict(posts=posts, rates=rates, due=due.timestamp(), killed_at=killed_at, stalled=stalled,
                states=states, total=total, cpu=h.format_cpu(usage), load=load)


def report_burst(r: dict, label: str) -> bool:
    from collections import Counter, defaultdict

    from telline.sms import rate as rate_rules
    posts, total, due = r["posts"], r["total"], r["due"]
    times = sorted(p.time for p in posts) or [due]
    per_to = Counter(p.get("To") for p in posts)
    by_line: dict[str, list[float]] = defaultdict(list)
    for p in posts:
        by_line[p.get("From")].append(p.time)
    over = []
    for line, ts in by_line.items():
        per_second, unit = r["rates"][line]
        amount, seconds = rate_rules.window(per_second / rate_rules.cost(unit, 1))
        allowed = amount / seconds  # texts per 1-s window (1-segment texts)
        if h.max_in_window(ts, 1.0) > allowed:
            ts = sorted(ts)
            gap = min(b - a for a, b in zip(ts, ts[1:], strict=False))  # closest two sends (at ≤ 1/s: the gap)
            over.append((line, h.max_in_window(ts, 1.0), allowed, round(gap, 3)))
    early = sum(1 for t in times if t < due)
    twice = sum(1 for n in per_to.values() if n > 1)
    ok = not over and not early and not twice and len(per_to) == total and not r["stalled"]
    print(f"[{label}] {len(posts)} texts handed over to {len(per_to)} numbers (of {total}); "
          f"{'STALLED; ' if r['stalled'] else ''}"
          f"first {times[0] - due:.1f} s after the due time, last {times[-1] - due:.1f} s after; "
          f"{h.span_rate(times):.1f} texts/s first to last; "
          f"lines over their rate in some 1-s window: {len(over)}{' ' + str(over[:3]) if over else ''}; "
          f"before due: {early}; numbers texted twice: {twice}; reminders {r['states']}"
          + (f"; killed the cron and a worker {r['killed_at'][0] - due:.1f} s after the due time, "
             f"with {r['killed_at'][1]} handed over" if r["killed_at"] else ""), flush=True)
    for width in (10,):
        buckets = Counter(int((t - times[0]) // width) for t in times)
        print("  texts per 10 s: " + " ".join(str(buckets.get(b, 0)) for b in range(max(buckets) + 1)))
    print(f"  CPU (killed processes: until the kill): {r['cpu']}; machine load average at the start {r['load']:.1f}")
    return ok


def burst_mode(args) -> int:
    from telline import localredis
    latency, jitter = h.latency_of(args)
    server = localredis.start_private()
    standin = h.StandInProcess(latency=latency, jitter=jitter)
    print(f"burst: {GROUPS} groups × {MEMBERS} members, {GROUPS} lines (3 in 4 at 1 segment/s, 1 in 4 at "
          f"3 messages/s), 2 workers (--simple), {h.describe_latency(latency, jitter)}, {args.db}", flush=True)
    ok = True
    try:
        for kill in ([False, True] if args.kill == "both" else [args.kill == "yes"]):
            ok &= report_burst(run_burst(args, standin, server.url, kill),
                               "a worker and the cron killed midway" if kill else "no fault")
    finally:
        standin.stop()
        server.stop()
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    tick = sub.add_parser("tick")
    tick.add_argument("--db", choices=["postgres", "sqlite", "both"], default="both")
    tick.add_argument("--ticks", type=int, default=40)
    burst = sub.add_parser("burst")
    burst.add_argument("--db", choices=["postgres", "sqlite"], default="sqlite")
    burst.add_argument("--kill", choices=["no", "yes", "both"], default="both")
    burst.add_argument("--max-seconds", type=float, default=None,
                       help="stop waiting this long after the due time (a slow build: measure what went)")
    h.add_latency_args(burst)
    args = parser.parse_args()
    if args.mode == "tick":
        return tick_mode(args)
    return burst_mode(args)


if __name__ == "__main__":
    sys.exit(main())
