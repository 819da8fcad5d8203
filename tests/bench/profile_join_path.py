"""Where the join path's time goes, in-process (no gunicorn, no sockets): companion to bench_meeting_surge.py.

    .venv/bin/python tests/bench/profile_join_path.py [--paths 300] [--trace] [--cprofile N] [--callbacks]

On a fresh PostgreSQL database seeded like the surge benchmark, telline's app (create_app,
TELLINE_PUBLIC_URL set, log level WARNING) and tests/bench/bare_app.py are driven through
Flask's test client with the same signed forms, alternately, and this process's CPU time
per join path is printed for each (the app, SQLAlchemy and psycopg's client side; the
PostgreSQL backend's CPU is read from /proc for its pid).

--trace:      every statement one join path sends to PostgreSQL, with the server's time for it
              (log_min_duration_statement=0 on this database only, read back from the server log),
              and the Redis commands.
--cprofile N: cProfile over N telline join paths, grouped by library.
--callbacks:  the same for the conference callbacks each caller brings (bench_meeting_surge.py
              --with-callbacks): the join paths first, then their participant-join callbacks (and
              conference-start for the first host), measured, traced and profiled on their own.
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
    """The two requests of a join path; returns the ParticipantLabel telline gave the caller."""
    r1 = post(client, caller.first)
    assert r1.status_code == 200 and (not gather or b"<Gather" in r1.data), r1.data
    r2 = post(client, caller.second)
    assert r2.status_code == 200 and b"<Conference" in r2.data, r2.data
    return surge._LABEL.search(r2.data).group(1).decode()


def callback_requests(caller, label):
    """The caller's conference callbacks, signed as Twilio signs them."""
    return [surge._signed(PUBLIC, surge.CONFERENCE_CALLBACK, dict(form, ParticipantLabel=label) if "CallSid" in form
                          else form) for form in caller.callbacks]


def send_callbacks(client, requests):
    for request in requests:
        r = post(client, request)
        assert r.status_code == 204, (r.status_code, r.data)


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


class Meter:
    """This process's CPU, the database backends' CPU and wall time, per item, in ms."""

    def __init__(self, pg_pids):
        self.pg_pids = pg_pids
        self.pg0 = sum(surge.proc_cpu(p, children=False) for p in pg_pids)
        self.c0, self.w0 = time.process_time(), time.perf_counter()

    def per(self, n):
        c1, w1 = time.process_time(), time.perf_counter()
        pg1 = sum(surge.proc_cpu(p, children=False) for p in self.pg_pids)
        return 1000 * (c1 - self.c0) / n, 1000 * (w1 - self.w0) / n, 1000 * (pg1 - self.pg0) / n


def cpu_per_path(client, meeting, n, gather, pg_pids, with_callbacks=False):
    """(join path, its callbacks or None, one callback request or None): each (app CPU, wall, PG CPU) ms."""
    callers = surge.callers_for(PUBLIC, meeting, n, with_callbacks)
    meter = Meter(pg_pids)
    labels = [join(client, c, gather) for c in callers]
    joined = meter.per(n)
    if not with_callbacks:
        return joined, None, None
    requests = [callback_requests(c, label) for c, label in zip(callers, labels, strict=True)]
    meter = Meter(pg_pids)
    for rs in requests:
        send_callbacks(client, rs)
    count = sum(len(rs) for rs in requests)
    per_caller, per_request = meter.per(n), meter.per(count)
    send_callbacks(client, [callers[0].conference.end()])
    return joined, per_caller, per_request


def trace(app, db_name, meeting, with_callbacks=False):
    """Statements one join path sends (log_min_duration_statement=0 for this database only); with callbacks,
    then those of the first host's callbacks and of a member's participant-join."""
    import psycopg

    from telline.db import EXTENSION
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db_name}" SET log_min_duration_statement = 0')
    app.extensions[EXTENSION].dispose()  # new connections (both pools) pick the setting up
    client = app.test_client()
    # connect, and let psycopg prepare the statements (its 5th use), outside the traced path
    warm = surge.callers_for(PUBLIC, meeting, 8, with_callbacks)
    for c in warm:
        send_callbacks(client, callback_requests(c, join(client, c)))
    if with_callbacks:
        send_callbacks(client, [warm[0].conference.end()])
    redis_conn = app.extensions["telline.job_queues"].connection
    commands = []
    original = redis_conn.execute_command

    def counting(*args, **kwargs):
        commands.append(args[0])
        return original(*args, **kwargs)
    redis_conn.execute_command = counting
    start = PG_LOG.stat().st_size
    host, caller = surge.callers_for(PUBLIC, meeting, 2, with_callbacks)
    steps = [("POST /twilio/voice", caller.first), ("POST /twilio/voice/code", caller.second)]
    if with_callbacks:
        send_callbacks(client, callback_requests(host, join(client, host)))  # the conference is on
        steps += [(f"POST {surge.CONFERENCE_CALLBACK} {form['StatusCallbackEvent']}", request)
                  for form, request in zip(caller.callbacks, callback_requests(caller, "member-0"), strict=True)]
    marks = {}
    for label, request in steps:
        commands.clear()
        before = PG_LOG.stat().st_size
        post(client, request)
        time.sleep(0.3)  # the log is written asynchronously
        marks[label] = (before, PG_LOG.stat().st_size, list(commands))
    redis_conn.execute_command = original
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db_name}" RESET log_min_duration_statement')
    if with_callbacks:
        send_callbacks(client, [host.conference.end()])
    app.extensions[EXTENSION].dispose()
    with PG_LOG.open("rb") as f:
        for label, (a, b, cmds) in marks.items():
            f.seek(a)
            lines = [ln for ln in f.read(b - a).decode(errors="replace").splitlines()
                     if f"@{db_name} " in ln and ("statement:" in ln or "execute" in ln)]
            print(f"\n{label}: {len(lines)} statements to PostgreSQL, Redis {cmds}")
            for ln in lines:
                took = re.search(r"duration: ([0-9.]+) ms", ln)
                text = re.sub(r"^.*?(statement|execute [^:]*): ", "", ln)
                print(f"    {took.group(1) if took else '?':>7} ms  {text[:140]}")
    del start


def grouped_profile(app, meeting, n, with_callbacks=False):
    client = app.test_client()
    callers = surge.callers_for(PUBLIC, meeting, n, with_callbacks)
    prof = cProfile.Profile(time.process_time)  # CPU time: waiting for PostgreSQL/Redis not counted
    if with_callbacks:  # the join paths unprofiled, their callbacks profiled
        requests = [callback_requests(c, join(client, c)) for c in callers]
        prof.enable()
        for rs in requests:
            send_callbacks(client, rs)
        prof.disable()
        send_callbacks(client, [callers[0].conference.end()])
    else:
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
    what = "join paths' callbacks" if with_callbacks else "join paths"
    print(f"\ncProfile (CPU time) over {n} telline {what}: {1000 * total / n:.2f} ms per path (profiled, "
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
    parser.add_argument("--callbacks", action="store_true")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    args = parser.parse_args()

    import redis
    rconn = redis.Redis.from_url(args.redis_url)
    rconn.flushdb()
    try:
        with surge.fresh_database("postgresql://postgres@127.0.0.1:5432/test") as (db_name, db_url):
            meeting = surge.seed_meeting(db_url)
            apps = {"telline": telline_app(db_url, args.redis_url)}
            clients = {name: app.test_client() for name, app in apps.items()}
            clients["bare"] = bare_app().test_client()
            for name, client in clients.items():
                warm = surge.callers_for(PUBLIC, meeting, 20, args.callbacks)
                for c in warm:
                    send_callbacks(client, callback_requests(c, join(client, c, gather=name != "bare")))
                if args.callbacks:
                    send_callbacks(client, [warm[0].conference.end()])
            if args.trace:
                trace(apps["telline"], db_name, meeting, args.callbacks)
                warm = surge.callers_for(PUBLIC, meeting, 2, args.callbacks)  # connect again (backend pids)
                for c in warm:
                    send_callbacks(clients["telline"], callback_requests(c, join(clients["telline"], c)))
                if args.callbacks:
                    send_callbacks(clients["telline"], [warm[0].conference.end()])
            if args.cprofile:
                grouped_profile(apps["telline"], meeting, args.cprofile, args.callbacks)
            results = collections.defaultdict(list)
            for _ in range(args.repeat):
                for name, client in clients.items():
                    pids = backend_pids(db_name)
                    results[name].append(cpu_per_path(client, meeting, args.paths, name != "bare", pids,
                                                      args.callbacks))
            print(f"\nin-process, {args.paths} join paths × {args.repeat} (median; this process's CPU, "
                  "PostgreSQL backends' CPU, wall):")
            parts = [(0, "join path", "path")] + ([(1, "its callbacks", "path"), (2, "one callback", "req")]
                                                    if args.callbacks else [])
            for index, what, unit in parts:
                base = statistics.median(r[index][0] for r in results["bare"])
                for name, rows in results.items():
                    cpu = statistics.median(r[index][0] for r in rows)
                    pg = statistics.median(r[index][2] for r in rows)
                    wall = statistics.median(r[index][1] for r in rows)
                    print(f"  {name:<8} {what:<14} app {cpu:6.2f} ms CPU/{unit}  postgres {pg:5.2f} ms CPU/{unit}"
                          f"  wall {wall:6.2f} ms/{unit}   (app CPU ×{cpu / base:.1f} bare)")
                    spread = [round(r[index][0], 2) for r in rows]
                    print(f"  {'':<8} {'':<14} app CPU per round {spread}")
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
