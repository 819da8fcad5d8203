"""Where a broadcast message's time goes in the worker: deliver_batch() run in this process.

    .venv/bin/python tests/bench/profile_deliver.py [--db postgres|sqlite] [--members 2000]
        [--profile out.html] [--redis-url redis://127.0.0.1:6379/11]

Seeds a fresh database like bench_broadcast_fanout.py, runs fan_out() here, then runs
every deliver_batch job it enqueued here too (no worker), against the stand-in in
its own process. Prints per message: wall time, this process's CPU, SQL statements
(by kind), connection checkouts, Redis commands; and the same for the plain twilio
client's send alone. With --profile, a pyinstrument profile (needs `pip install
pyinstrument` in the venv) is written as HTML and its text summary printed.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

import _harness as h
from sqlalchemy import event


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--profile", help="write a pyinstrument HTML profile here")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()

    standin = h.StandInProcess()
    try:
        with h.fresh_database(args.db) as url:
            conn = h.flush_redis(args.redis_url)
            app = h.app_for(url, args.redis_url, standin.url)
            from rq.job import Job

            from telline import db
            from telline.job_queues import queues
            from telline.models import Line
            from telline.sms.broadcast import fan_out, start_broadcast
            from telline.twilio.gateway import gateway
            with app.app_context():
                engine = db.database().engine
                group_id, line_id = h.seed(engine, args.members, sms_rate=10_000)
                session = db.session()
                broadcast = start_broadcast(session, group_id=group_id, body="Profile: hello from the bench.")
                session.commit()
                conn.delete(queues()["bulk"].key)  # the fan_out job: run here instead
                t = time.perf_counter()
                fanned = fan_out(broadcast.id)
                print(f"fan_out({fanned} messages) in this process: {time.perf_counter() - t:.3f} s")
                job_ids = [j.decode() for j in conn.lrange(queues()["bulk"].key, 0, -1)]
                conn.delete(queues()["bulk"].key)
                batches = [Job.fetch(j, connection=conn).args[0] for j in job_ids]
                sender = session.get(Line, line_id).phone_number
                session.rollback()

                # plain send through the same gateway, for comparison
                gw = gateway()
                n_plain = 500
                cpu0, t0 = os.times(), time.perf_counter()
                for i in range(n_plain):
                    gw.send_sms(from_=sender, to=f"+1618{i:07d}", body="plain")
                plain_wall = (time.perf_counter() - t0) / n_plain
                c = os.times()
                plain_cpu = (c.user + c.system - cpu0.user - cpu0.system) / n_plain

            stats = collections.Counter()

            @event.listens_for(engine, "before_cursor_execute")
            def _count(conn_, cursor, statement, parameters, context, executemany):
                stats["sql"] += 1
                stats["sql:" + statement.split(None, 1)[0].upper()] += 1

            @event.listens_for(engine.pool, "checkout")
            def _checkout(*a):
                stats["pool checkouts"] += 1

            @event.listens_for(engine, "commit")
            def _commit(*a):
                stats["commits"] += 1

            @event.listens_for(engine, "rollback")
            def _rollback(*a):
                stats["rollbacks"] += 1

            original_ping = engine.dialect.do_ping

            def counting_ping(dbapi_connection):
                stats["pre-pings"] += 1
                return original_ping(dbapi_connection)
            engine.dialect.do_ping = counting_ping

            from redis.client import Redis
            original_execute = Redis.execute_command

            def counting(self, *a, **k):
                stats["redis commands"] += 1
                return original_execute(self, *a, **k)
            Redis.execute_command = counting

            profiler = None
            if args.profile:
                from pyinstrument import Profiler
                profiler = Profiler(interval=0.0005)
            from telline.sms.batch import deliver_batch
            cpu0, t0 = os.times(), time.perf_counter()
            if profiler:
                profiler.start()
            batch_times = []
            for ids in batches:
                tb = time.perf_counter()
                with app.app_context():  # as TellineWorker does, one per job
                    deliver_batch(ids)
                batch_times.append(time.perf_counter() - tb)
            if profiler:
                profiler.stop()
            wall = time.perf_counter() - t0
            c = os.times()
            cpu = c.user + c.system - cpu0.user - cpu0.system
            Redis.execute_command = original_execute
            sent = len(standin.post_times()) - n_plain
            print(f"deliver_batch over {sent} messages ({len(batches)} jobs), one process, {args.db}:")
            print(f"  per message: wall {wall / sent * 1e3:.2f} ms, CPU here {cpu / sent * 1e3:.2f} ms")
            print(f"  plain gateway.send_sms alone: wall {plain_wall * 1e3:.2f} ms, CPU here {plain_cpu * 1e3:.2f} ms")
            batch_times.sort()
            print(f"  per job ({len(batches[0])} messages): median {batch_times[len(batch_times) // 2] * 1e3:.0f} ms, "
                  f"min {batch_times[0] * 1e3:.0f} ms, max {batch_times[-1] * 1e3:.0f} ms")
            for key, value in sorted(stats.items()):
                print(f"  {key}: {value / sent:.2f} per message")
            if profiler:
                with open(args.profile, "w") as f:
                    f.write(profiler.output_html())
                print(profiler.output_text(unicode=True, color=False, show_all=False))
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
