"""Benchmark the members CSV at its largest: a 20,000-row file previewed and imported, then exported.

    .venv/bin/python tests/bench/bench_member_import.py [--db postgres|sqlite|both] [--rows 20000] [--runs 3]

Each run, on a fresh database: a group and an admin; a file of --rows members (every tenth with
consent=yes and how and when, every hundredth a bad number), in telline's own columns; then
(a) preview(), (b) commit_import() and its commit, (c) export_csv() of the group, (d) a page of
50 members (on PostgreSQL after ANALYZE, as autovacuum does soon after an import): the first,
the first opted in, the first by a name search, the last. Printed: the median and the spread (min–max) of each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._harness import app_for, fresh_database  # noqa: E402


def make_file(rows: int) -> str:
    lines = ["phone,name,language,timezone,consent,consent_source,consent_date"]
    for i in range(rows):
        number = "12345" if i % 100 == 99 else f"07400 {i:06d}"
        consent = "yes,paper form,2026-01-05" if i % 10 == 0 else ",,"
        lines.append(f"{number},Member {i},{'fr' if i % 3 else ''},,{consent}")
    return "\n".join(lines) + "\n"


def one_run(kind: str, text: str) -> dict[str, float]:
    from telline import db
    from telline.accounts import users
    from telline.members import csv_export, csv_import, records
    from telline.models import Group
    with fresh_database(kind) as url:
        app = app_for(url, "redis://127.0.0.1:6379/15", "http://127.0.0.1:1")
        with app.app_context():
            session = db.session()
            group = Group(name="Bench", default_region="GB", timezone="Europe/London")
            session.add(group)
            admin = users.create_user(session, email="bench@example.org", display_name="Bench",
                                      password="bench password", role="admin")
            session.commit()
            times = {}
            t = time.perf_counter()
            preview = csv_import.preview(session, admin, group.id, text)
            times["preview"] = time.perf_counter() - t
            t = time.perf_counter()
            result = csv_import.commit_import(session, admin, group.id, text)
            session.commit()
            times["import"] = time.perf_counter() - t
            t = time.perf_counter()
            exported = csv_export.export_csv(session, admin, group.id)
            session.commit()
            times["export"] = time.perf_counter() - t
            if kind == "postgres":  # as autovacuum does within a minute of a bulk insert: without
                session.execute(sa.text("ANALYZE"))  # statistics the planner reads all 20,000 (~150 ms)
            for name, filters in (("page", {}), ("page opted-in", {"opted_in": True}),
                                  ("page search", {"search": "member 1999"}),
                                  ("last page", {"after_id": result.imported - 50})):
                t = time.perf_counter()
                page = records.list_members(session, admin, group.id, **filters)  # type: ignore[arg-type]
                times[name] = time.perf_counter() - t
            assert preview.valid == result.imported and exported.count("\r\n") == result.imported + 1
            assert page.members, "the search found nobody"
            print(f"  {kind}: {result.imported} imported, {preview.errors} errors, "
                  f"{result.consent_recorded} consents", flush=True)
            session.close()
            db.database().engine.dispose()
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="both", choices=["postgres", "sqlite", "both"])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    text = make_file(args.rows)
    print(f"file: {args.rows} rows, {len(text.encode()) / 1024:.0f} KB")
    for kind in (["postgres", "sqlite"] if args.db == "both" else [args.db]):
        runs = [one_run(kind, text) for _ in range(args.runs)]
        for step in runs[0]:
            values = [r[step] for r in runs]
            print(f"{kind:8} {step:13} median {statistics.median(values):7.3f} s  "
                  f"(min {min(values):.3f}, max {max(values):.3f}, {len(values)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
