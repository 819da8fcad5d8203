"""API latency: listing a group's 2,000 members and a group's next 50 meetings, on PostgreSQL.

    .venv/bin/python tests/bench/bench_api.py [--db postgres|sqlite] [--members 2000] [--requests 200]
        [--rounds 3] [--redis-url redis://127.0.0.1:6379/10]

What it measures
  A fresh database (migrated) holding one group with `--members` active, opted-in members (bulk
  inserted, as tests/bench/_harness.py seeds them), three weekly series on its line (Monday,
  Wednesday, Friday evenings, Europe/Paris, one with a cancelled and a moved meeting), a second
  group of the same size (so the queries must select, not read everything), and an admin with an
  API token. The app is telline's own (create_app on that database, Redis for the limiter), called
  through Flask's WSGI test client in this process: the whole request path (routing, token lookup
  in the database, the query, marshmallow serialisation, the ETag) without the network, which on
  loopback adds well under a millisecond.

  Per round, `--requests` requests of each kind, interleaved (warm-up of 20 each not counted):
    members-page  GET /api/v1/groups/{id}/members?limit=500 (one page of the listing)
    members-all   the whole listing of the 2,000 members: 4 pages of 500, following `next`
    next-50       GET /api/v1/groups/{id}/occurrences?limit=50 (the group's next 50 meetings)
  Figures: p50, p95, p99 per kind and round, milliseconds of wall time.

Target (from the issue): p95 ≤ 50 ms for listing the 2,000 members and for the next 50
occurrences, on PostgreSQL. Exit status 1 when the median round's p95 of members-all or next-50 misses it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time

import _harness as h
import sqlalchemy as sa

TARGET_MS = 50.0


def build(database_url: str, redis_url: str, members: int):
    from telline import db
    from telline.accounts import tokens, users
    from telline.models import Group, Line
    from telline.scheduling import occurrences
    from telline.scheduling.series import create_series
    engine = sa.create_engine(database_url)
    group_id, line_id = h.seed(engine, members, sms_rate=10)
    h.seed(engine, members, sms_rate=10, first_member=members)  # another group: the queries must select
    engine.dispose()
    app = h.app_for(database_url, redis_url, "http://127.0.0.1:9")
    with app.app_context():
        session = db.session()
        group, line = session.get_one(Group, group_id), session.get_one(Line, line_id)
        group.timezone = "Europe/Paris"
        now = dt.datetime.now(dt.UTC)
        monday = (now + dt.timedelta(days=7 - now.weekday())).replace(tzinfo=None, hour=19, minute=0, second=0,
                                                                       microsecond=0)
        made = [create_series(session, group=group, line=line, title=f"Meeting {day}", rrule="FREQ=WEEKLY",
                              first_start_local=monday + dt.timedelta(days=day), timezone="Europe/Paris")
                for day in (0, 2, 4)]
        session.flush()
        first = made[0]
        occurrences.cancel(session, first.id, first.first_start + dt.timedelta(days=7), now=now)
        occurrences.move(session, first.id, first.first_start + dt.timedelta(days=14),
                         (monday + dt.timedelta(days=15)), now=now)
        admin = users.create_user(session, email="bench@example.org", display_name="Bench",
                                  password="bench password 1", role="admin")
        _token, raw = tokens.issue_token(session, admin, "bench")
        session.commit()
    return app, group_id, raw


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_round(client, group_id: int, token: str, requests: int, members: int) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}

    def timed(path: str) -> tuple[float, dict]:
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        took = (time.perf_counter() - started) * 1e3
        assert answer.status_code == 200, (path, answer.status_code, answer.data[:300])
        return took, answer.get_json()

    def members_page() -> float:
        return timed(f"/api/v1/groups/{group_id}/members?limit=500")[0]

    def members_all() -> float:
        total, after, seen = 0.0, None, 0
        while True:
            took, page = timed(f"/api/v1/groups/{group_id}/members?limit=500" + (f"&after={after}" if after else ""))
            total += took
            seen += len(page["items"])
            after = page["next"]
            if after is None:
                break
        assert seen == members, seen
        return total

    def next_50() -> float:
        took, page = timed(f"/api/v1/groups/{group_id}/occurrences?limit=50")
        assert len(page["items"]) == 50, len(page["items"])
        return took

    kinds = {"members-page": members_page, "members-all": members_all, "next-50": next_50}
    for _ in range(20):
        for fn in kinds.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(requests):
        for name, fn in kinds.items():
            times[name].append(fn())
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    args = parser.parse_args()
    h.flush_redis(args.redis_url)
    with h.fresh_database(args.db) as url:
        app, group_id, token = build(url, args.redis_url, args.members)
        client = app.test_client()
        p95s: dict[str, list[float]] = {}
        print(f"API latency, {args.db}, {args.members} members, {args.requests} requests per kind per round")
        for round_no in range(1, args.rounds + 1):
            times = run_round(client, group_id, token, args.requests, args.members)
            for name, values in times.items():
                p95s.setdefault(name, []).append(percentile(values, 95))
                print(f"  round {round_no} {name:13s} p50 {statistics.median(values):6.1f} ms  "
                      f"p95 {percentile(values, 95):6.1f} ms  p99 {percentile(values, 99):6.1f} ms")
        app.extensions["telline.db"].dispose()
    print("summary (median of rounds' p95, with the spread):")
    missed = False
    for name, values in p95s.items():
        median = statistics.median(values)
        gated = name in ("members-all", "next-50")
        ok = median <= TARGET_MS
        missed |= gated and not ok
        print(f"  {name:13s} p95 {median:6.1f} ms  (rounds {min(values):.1f}–{max(values):.1f})"
              + (f"  target ≤ {TARGET_MS:.0f} ms: {'met' if ok else 'MISSED'}" if gated else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
