"""Benchmark a broadcast's fan-out: 10,000 texts from one broadcast to the Twilio stand-in, 2 workers.

    .venv/bin/python tests/bench/bench_broadcast_fanout.py [--db postgres|sqlite|both]
        [--modes fork,simple] [--members 10000] [--workers 2]
        [--baseline-messages 10000] [--redis-url redis://127.0.0.1:6379/11]
        [--latency 200 --jitter 50 | --fast]

The stand-in answers each API request after --latency ± --jitter ms (default 200 ± 50, as
Twilio's REST API; times are its receive times); --fast answers at once, as this bench ran
before. With the latency, both the pipeline and the 2-process baseline send ~5 texts/s per
process until sends run concurrently: 10,000 texts then take ~15 minutes a mode and as long for
each baseline — use e.g. --members 1000 --baseline-messages 1000 for a first look.

Set-up per database (a fresh one: a new PostgreSQL database, or a new SQLite file):
a group without quiet hours, its line at 10,000 msg/s (the limiter is not the
bottleneck), 10,000 members with an active membership and an opt_in consent event,
all committed. The stand-in runs as its own process (its serve(), logging at WARNING;
--loud-standin for the module's CLI as is); the workers are `python -m telline worker`
(forking, "fork") and/or `... worker --simple` ("simple") subprocesses. Redis db 11 is
flushed at the start and after each mode. Each mode sends a new broadcast to the group.

Measured, per worker mode:
(a) enqueue time: from calling start_broadcast() (then commit) until the fan_out job
    has finished, i.e. every message row is inserted and every deliver_batch job is
    in Redis (fan_out's enqueue_many is its last step). Target ≤ 2 s.
(b) hand-over rate: messages accepted by the stand-in per second, first to last send
    (the stand-in's own request times), as a ratio to what the plain twilio client
    reaches against the same stand-in in the same run: 2 processes calling
    Client.messages.create in a loop (the workers' concurrency), 10,000 messages.
    The baseline runs before and after each pipeline run; the ratio uses their mean.
    Target ≥ 0.7.
Also printed: CPU seconds per component (stand-in, workers incl. their forked horses,
postgres, redis, this process, the whole machine) over each run, per message.
Exit status 0 when every measured mode meets both targets.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import _harness as h
import sqlalchemy as sa
from rq.job import Job

BODY = "Bench: this week's meeting moves to Thursday 7pm, same number. Reply STOP to opt out."
DONE = ("pending", "submitting", "retrying", "deferred")  # statuses still on their way
STALL = 60  # seconds without a row handed over: stop waiting, report what happened


def run_broadcast(app, standin: h.StandInProcess, workers: h.Workers, group_id: int, members: int,
                  timeout: float) -> dict:
    from telline import db
    from telline.job_queues import queues
    from telline.models import Message
    from telline.sms.broadcast import start_broadcast
    from telline.tasks import _PENDING as _PENDING_TASKS

    with app.app_context():
        session = db.session()
        standin.control.reset()
        cpu = h.CpuMeter(standin=[standin.proc.pid], workers=workers.pids)
        t0 = time.time()
        broadcast = start_broadcast(session, group_id=group_id, body=BODY)
        # the fan_out task's job, sent at commit (telline.tasks): its id is known before
        (send,) = session.info[_PENDING_TASKS]
        session.commit()
        t_commit = time.time()
        job = Job.fetch(send.job_id, connection=queues().connection)
        while (status := job.get_status(refresh=True)) not in ("finished", "failed"):
            time.sleep(0.002)
        t_seen = time.time()
        if status != "finished":
            raise RuntimeError(f"fan_out failed:\n{job.latest_result().exc_string}")
        job.refresh()
        fanned = job.return_value()  # tasks.run returns what fan_out did
        started, ended = job.started_at.timestamp(), job.ended_at.timestamp()

        # (b): wait for every message to be handed over
        count = sa.select(sa.func.count()).select_from(Message).where(
            Message.broadcast_id == broadcast.id, Message.status.not_in(DONE))
        deadline, last, last_change = time.monotonic() + timeout, -1, time.monotonic()
        stalled = None
        while True:
            session.rollback()
            handed = session.scalar(count)
            # End the transaction before sleeping: on SQLite (BEGIN IMMEDIATE) it holds the write lock.
            session.rollback()
            if handed >= fanned:
                break
            if handed != last:
                last, last_change = handed, time.monotonic()
            if time.monotonic() > deadline or time.monotonic() - last_change > STALL:
                stalled = (f"STALLED: {handed}/{fanned} rows handed over, no progress for "
                           f"{time.monotonic() - last_change:.0f} s")
                break
            time.sleep(0.1)
        usage = cpu.stop()
        statuses = dict(session.execute(sa.select(Message.status, sa.func.count()).where(
            Message.broadcast_id == broadcast.id).group_by(Message.status)).all())
        sent_at = sorted(t.timestamp() for t in session.scalars(
            sa.select(Message.sent_at).where(Message.broadcast_id == broadcast.id)) if t)
        session.rollback()

    posts = standin.posts()
    times = [t for t, _ in posts]
    log = workers.output(tail=None)
    return dict(
        fanned=fanned, statuses=statuses, posts=len(times), stalled=stalled,
        duplicates=len(posts) - len({to for _, to in posts}),
        failed_jobs=log.count("Traceback"), locked=log.count("database is locked"),
        enqueue=ended - t0, enqueue_seen=t_seen - t0, commit=t_commit - t0,
        pickup=started - t_commit, job_run=ended - started,
        first_send=times[0] - t0, rate=h.span_rate(times), rate_sent_at=h.span_rate(sent_at),
        send_wall=times[-1] - times[0], cpu=usage)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite", "both"), default="postgres")
    parser.add_argument("--modes", default="fork,simple",
                        help="worker modes, comma-separated: fork, simple")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-messages", type=int, default=10_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    h.add_latency_args(parser)
    parser.add_argument("--loud-standin", action="store_true",
                        help="run the stand-in's own CLI (logs every request at INFO) instead of quietly")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    kinds = ("postgres", "sqlite") if args.db == "both" else (args.db,)

    ok = True
    latency, jitter = h.latency_of(args)
    standin = h.StandInProcess(quiet=not args.loud_standin, latency=latency, jitter=jitter)
    try:
        print(f"stand-in at {standin.url} (pid {standin.proc.pid}), {h.describe_latency(latency, jitter)}; "
              f"{args.workers} workers; "
              f"{args.members} members; redis {args.redis_url}", flush=True)
        for kind in kinds:
            with h.fresh_database(kind) as url:
                h.flush_redis(args.redis_url)
                app = h.app_for(url, args.redis_url, standin.url)
                with app.app_context():
                    from telline import db
                    t = time.monotonic()
                    group_id, _ = h.seed(db.database().engine, args.members, sms_rate=10_000)
                    print(f"\n== {kind}: seeded {args.members} members in {time.monotonic() - t:.1f} s", flush=True)

                base = [h.baseline(standin, args.workers, args.baseline_messages)]
                print(f"baseline (plain client, {args.workers} processes): {base[0]['rate']:.0f} msg/s "
                      f"[{h.format_cpu(base[0]['cpu'], base[0]['n'])}; client {base[0]['client_cpu']:.2f}s "
                      f"= {base[0]['client_cpu'] / base[0]['n'] * 1e3:.2f} ms/msg]", flush=True)
                for mode in modes:
                    simple, env = h.parse_mode(mode)
                    workers = h.Workers(args.workers, url, args.redis_url, standin.url, simple=simple, extra_env=env)
                    try:
                        workers.wait_ready()
                        r = run_broadcast(app, standin, workers, group_id, args.members, args.timeout)
                    finally:
                        workers.stop()
                        h.flush_redis(args.redis_url)  # a stalled run's jobs must not run in the next mode
                    base.append(h.baseline(standin, args.workers, args.baseline_messages))
                    ref = statistics.mean(b["rate"] for b in base[-2:])
                    ratio = r["rate"] / ref
                    good = (r["enqueue"] <= 2.0 and ratio >= 0.7 and r["posts"] == args.members
                            and not r["stalled"] and not r["duplicates"])
                    ok &= good
                    print(f"-- {kind}, {mode} workers: {'PASS' if good else 'FAIL'}")
                    print(f"   (a) enqueue: {r['enqueue']:.2f} s (target ≤ 2) = commit {r['commit']:.2f} "
                          f"+ pickup {r['pickup']:.3f} + fan_out job {r['job_run']:.2f}"
                          f"  [seen finished by polling at {r['enqueue_seen']:.2f} s]; {r['fanned']} messages")
                    print(f"   (b) hand-over: {r['rate']:.0f} msg/s over {r['send_wall']:.1f} s "
                          f"(rows' sent_at: {r['rate_sent_at']:.0f}/s); baseline {base[-2]['rate']:.0f} "
                          f"before, {base[-1]['rate']:.0f} after → ratio {ratio:.2f} (target ≥ 0.7)")
                    print(f"   stand-in accepted {r['posts']} ({r['duplicates']} to a number already sent to); "
                          f"rows {r['statuses']}; first send {r['first_send']:.2f} s after start_broadcast")
                    if r["stalled"] or r["failed_jobs"]:
                        print(f"   {r['stalled'] or ''} workers logged {r['failed_jobs']} tracebacks, "
                              f"{r['locked']} 'database is locked'")
                    print(f"   CPU during the run: {h.format_cpu(r['cpu'], r['posts'])}", flush=True)
                print(f"baseline after: {base[-1]['rate']:.0f} msg/s "
                      f"[{h.format_cpu(base[-1]['cpu'], base[-1]['n'])}]", flush=True)
    finally:
        standin.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
