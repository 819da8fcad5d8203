"""Where the join path's time goes, in-process (no gunicorn, no sockets): companion to bench_meeting_surge.py.

    .venv/bin/python tests/bench/profile_join_path.py [--paths 300] [--trace] [--cprofile N]

On a fresh PostgreSQL database seeded like the surge benchmark, telline's app (create_app,
TELLINE_PUBLIC_URL set, log level WARNING) and tests/bench/bare_app.py are driven through
Flask's test client with the same signed forms, alternately, and this process's CPU time
per join path is printed for each (the app, SQLAlchemy and psycopg's client side; the
PostgreSQL backend's CPU is read from /proc for its pid).

--trace:      every statement one join path sends to PostgreSQL (log_statement=all on this
              database only, read back from the server log), and the Redis commands.
--cprofile N: cProfile over N telline join paths, grouped by library.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import os
import pstats
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import bench_meeting_surge as surge  # noqa: E402
import sqlalchemy as sa  # noqa: E402

PUBLIC = "http://127.0.0.1:9"  # never contacted: the signature covers this URL
PG_LOG = Path("/var/log/postgresql/postgresql-15-main.log")


def post(client, request):
    path, body, headers = request
    return client.post(path, data=body, headers={k: v for k, v in headers.items() if k not in ("Host", "Connection")},
                       base_url=PUBLIC)


def join(client, caller, gather=True):
    r1 = post(client, caller.first)
    assert r1.status_code == 200 and (not gather or b"<Gather" in r1.data), r1.data
    r2 = post(client, caller.second)
    assert r2.status_code == 200 and b"<Conference" in r2.data, r2.data


def telline_app(db_url, redis_url):
    from telline import create_app
    return create_app({
        "database_url": db_url, "redis_url": redis_url, "public_url": PUBLIC, "twilio_auth_token": surge.AUTH_TOKEN,
        "twilio_account_sid": surge.ACCOUNT_SID, "secret_key": "profile-secret-key-0123456789abcdef",
        "log_level": "WARNING"})


def bare_app():
    os.environ["BENCH_BARE_AUTH_TOKEN"] = surge.AUTH_TOKEN
    os.environ["BENCH_BARE_PUBLIC_URL"] = PUBLIC
    import bare_app as module
    return module.app


def backend_pids(db_name):
    import psycopg
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (db_name,))]


def cpu_per_path(client, code, n, gather, pg_pids):
    callers = [surge.Caller(PUBLIC, code) for _ in range(n)]
    pg0 = sum(surge.proc_cpu(p, children=False) for p in pg_pids)
    c0, w0 = time.process_time(), time.perf_counter()
    for c in callers:
        join(client, c, gather)
    c1, w1 = time.process_time(), time.perf_counter()
    pg1 = sum(surge.proc_cpu(p, children=False) for p in pg_pids)
    return 1000 * (c1 - c0) / n, 1000 * (w1 - w0) / n, 1000 * (pg1 - pg0) / n


def trace(app, db_name, db_url, code):
    """Statements one join path sends (log_statement=all for this database only)."""
    import psycopg

    from telline.db import EXTENSION
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db_name}" SET log_statement = \'all\'')
    app.extensions[EXTENSION].dispose()  # new connections (both pools) pick the setting up
    client = app.test_client()
    join(client, surge.Caller(PUBLIC, code))  # connect outside the traced path
    redis_conn = app.extensions["telline.job_queues"].connection
    commands = []
    original = redis_conn.execute_command

    def counting(*args, **kwargs):
        commands.append(args[0])
        return original(*args, **kwargs)
    redis_conn.execute_command = counting
    start = PG_LOG.stat().st_size
    caller = surge.Caller(PUBLIC, code)
    marks = {}
    for label, request in (("POST /twilio/voice", caller.first), ("POST /twilio/voice/code", caller.second)):
        commands.clear()
        before = PG_LOG.stat().st_size
        post(client, request)
        time.sleep(0.3)  # the log is written asynchronously
        marks[label] = (before, PG_LOG.stat().st_size, list(commands))
    redis_conn.execute_command = original
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db_name}" RESET log_statement')
    app.extensions[EXTENSION].dispose()
    with PG_LOG.open("rb") as f:
        for label, (a, b, cmds) in marks.items():
            f.seek(a)
            lines = [ln for ln in f.read(b - a).decode(errors="replace").splitlines()
                     if f"@{db_name} " in ln and ("statement:" in ln or "execute" in ln)]
            print(f"\n{label}: {len(lines)} statements to PostgreSQL, Redis {cmds}")
            for ln in lines:
                text = re.sub(r"^.*?(statement|execute [^:]*): ", "", ln)
                print(f"    {text[:150]}")
    del start


def grouped_profile(app, code, n):
    client = app.test_client()
    callers = [surge.Caller(PUBLIC, code) for _ in range(n)]
    prof = cProfile.Profile(time.process_time)  # CPU time: waiting for PostgreSQL/Redis not counted
    prof.enable()
    for c in callers:
        join(client, c)
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())  # tottime
    buckets = collections.Counter()
    rules = [("psycopg", ("psycopg",)), ("sqlalchemy", ("sqlalchemy",)),
             ("redis-py", ("/redis/",)), ("werkzeug", ("werkzeug",)), ("flask", ("/flask/",)),
             ("twilio (validator, TwiML)", ("/twilio/",)), ("xml.etree", ("xml/etree",)),
             ("dateutil (rrule)", ("dateutil",)), ("zoneinfo/datetime", ("zoneinfo", "_strptime")),
             ("phonenumbers", ("phonenumbers",)), ("prometheus_client", ("prometheus_client",)),
             ("logging", ("logging/",)), ("babel", ("babel",)), ("telline", ("/telline/",)),
             ("hmac/hashlib", ("hmac", "hashlib")), ("urllib", ("urllib",))]
    for (filename, _line, _name), v in stats.stats.items():
        for label, keys in rules:
            if any(k in filename for k in keys):
                buckets[label] += v[2]
                break
        else:
            buckets["other (builtins, test client, ...)"] += v[2]
    print(f"\ncProfile (CPU time) over {n} telline join paths: {1000 * total / n:.2f} ms per path (profiled, "
          "inflated); self time by library:")
    for label, t in buckets.most_common():
        print(f"  {100 * t / total:5.1f}%  {1000 * t / n:6.2f} ms/path  {label}")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
    print("\nhottest functions by self time:")
    print("\n".join(out.getvalue().splitlines()[-28:]))
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(r"telline/", 40)
    print("\ncumulative, telline's own functions:")
    print("\n".join(ln for ln in out.getvalue().splitlines() if "telline/" in ln or "ncalls" in ln))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--cprofile", type=int, default=0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    args = parser.parse_args()

    import redis
    rconn = redis.Redis.from_url(args.redis_url)
    rconn.flushdb()
    try:
        with surge.fresh_database("postgresql://postgres@127.0.0.1:5432/test") as (db_name, db_url):
            code = surge.seed_meeting(db_url)
            apps = {"telline": telline_app(db_url, args.redis_url)}
            clients = {name: app.test_client() for name, app in apps.items()}
            clients["bare"] = bare_app().test_client()
            for name, client in clients.items():
                for _ in range(20):
                    join(client, surge.Caller(PUBLIC, code), gather=name != "bare")
            if args.trace:
                trace(apps["telline"], db_name, db_url, code)
            if args.cprofile:
                grouped_profile(apps["telline"], code, args.cprofile)
            results = collections.defaultdict(list)
            for _ in range(args.repeat):
                for name, client in clients.items():
                    pids = backend_pids(db_name)
                    results[name].append(cpu_per_path(client, code, args.paths, name != "bare", pids))
            print(f"\nin-process, {args.paths} join paths × {args.repeat} (median; this process's CPU, "
                  "PostgreSQL backends' CPU, wall):")
            base = statistics.median(r[0] for r in results["bare"])
            for name, rows in results.items():
                cpu = statistics.median(r[0] for r in rows)
                print(f"  {name:<24} app {cpu:6.2f} ms CPU/path  postgres {statistics.median(r[2] for r in rows):5.2f}"
                      f" ms CPU/path  wall {statistics.median(r[1] for r in rows):6.2f} ms/path"
                      f"   (app CPU ×{cpu / base:.1f} bare)")
            engine = sa.create_engine(db_url)
            with engine.connect() as conn:
                total, joined, numbered, roles = conn.execute(sa.text(
                    "SELECT count(*), count(occurrence_id), count(from_number), count(role) FROM calls")).one()
            engine.dispose()
            print(f"\ncalls rows: {total}, with an occurrence {joined}, with a From {numbered}, with a role {roles}"
                  + ("" if total == joined == numbered == roles else "   <-- MISMATCH"))
    finally:
        rconn.flushdb()
    return 0


if __name__ == "__main__":
    sys.exit(main())
