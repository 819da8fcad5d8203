"""p95 of GET /api/v1/groups/{id}/occurrences?limit=50 (a group's next 50 meetings) on PostgreSQL.

A group with SERIES weekly series on two lines, a year of history, and CANCELLED cancelled and
moved meetings ahead; the request goes through the whole app (token check, access, agenda, JSON,
ETag) in-process with Flask's test client, REQUESTS times after a warm-up.

    python tests/bench/bench_api_occurrences.py [postgres|sqlite] [SERIES]
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from zoneinfo import ZoneInfo

from _harness import SECRET_KEY, fresh_database

REQUESTS = 300


def main(kind: str = "postgres", series_count: int = 20) -> None:
    from telline import create_app, db, groups
    from telline.accounts import tokens, users
    from telline.models import utcnow
    from telline.scheduling.occurrences import cancel, move
    from telline.scheduling.series import create_series, starts_from
    with fresh_database(kind) as url:
        app = create_app({"database_url": url, "testing": True, "secret_key": SECRET_KEY,
                          "twilio_account_sid": "AC" + "b" * 32, "twilio_auth_token": "x" * 32})
        with app.app_context():
            session = db.session()
            group = groups.create_group(session, name="Bench", timezone="Europe/London", region="GB")
            lines = [groups.add_line(session, group.id, f"+44 20 7946 00{i:02d}") for i in range(2)]
            admin = users.create_user(session, email="bench@example.org", display_name="B", password="x" * 12,
                                      role="admin")
            _, raw = tokens.issue_token(session, admin)
            now = utcnow()
            changed = 0
            zone = ZoneInfo("Europe/London")
            for i in range(series_count):
                first = (now - dt.timedelta(days=365)).astimezone(zone).replace(
                    tzinfo=None, hour=8 + i % 12, minute=0, second=0, microsecond=0)
                day = "MO TU WE TH FR".split()[i % 5]
                series = create_series(session, group=group, line=lines[i % 2], title=f"S{i}",
                                       first_start_local=first, rrule=f"FREQ=WEEKLY;BYDAY={day}",
                                       timezone="Europe/London", now=now)
                session.flush()
                for k, start in enumerate(starts_from(series, zone, now + dt.timedelta(days=1), 6)):
                    if k % 3 == 0:
                        cancel(session, series.id, start, now)
                    elif k % 3 == 1:
                        later = (start + dt.timedelta(hours=1)).astimezone(zone).replace(tzinfo=None)
                        move(session, series.id, start, later, now=now)
                    else:
                        continue
                    changed += 1
            session.commit()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {raw}"}
        path = f"/api/v1/groups/{group.id}/occurrences?limit=50"
        for _ in range(20):
            assert client.get(path, headers=headers).status_code == 200
        times = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and len(response.get_json()["items"]) == 50
        times.sort()
        print(f"{kind}: {series_count} series, {changed} moved/cancelled rows ahead, {REQUESTS} requests: "
              f"p50 {statistics.median(times):.1f} ms, p95 {times[int(0.95 * len(times))]:.1f} ms, "
              f"max {times[-1]:.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "postgres", int(sys.argv[2]) if len(sys.argv) > 2 else 20)
