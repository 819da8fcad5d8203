"""Meetings of a series: the upcoming ones (by the rule, with moved and cancelled ones where they
are), cancel or move one, and who attended. Listing writes nothing (telline.scheduling.agenda)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apiflask import abort

from telline import db
from telline.accounts import access, audit
from telline.api import conditional, paging, schemas
from telline.api.auth import auth, current_user
from telline.api.blueprint import bp
from telline.api.series import series_of_user
from telline.models import MeetingOccurrence, MeetingSeries, OccurrenceStatus, utcnow
from telline.scheduling import agenda, occurrences
from telline.voice import roster

OccurrencePage = paging.page_schema(schemas.OccurrenceOut, "OccurrencePage")


def _cursor(start: dt.datetime, series_id: int) -> str:
    return f"{start.astimezone(dt.UTC):%Y%m%dT%H%M%S%fZ}.{series_id}"


def _read_cursor(text: str) -> tuple[dt.datetime, int]:
    try:
        moment, _, series_id = text.partition(".")
        return dt.datetime.strptime(moment, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC), int(series_id)
    except ValueError:
        abort(422, "This is not a cursor this API gave (use `next` of the page before).",
              detail={"query": {"after": ["not a cursor"]}})


def occurrence_view(row: MeetingOccurrence, now: dt.datetime) -> dict[str, Any]:
    series = row.series
    started = row.starts_at <= now
    return {"series_id": series.id, "title": series.title, "original_start": row.original_start,
            "starts_at": row.starts_at, "ends_at": row.ends_at,
            "local_start": row.starts_at.astimezone(ZoneInfo(series.timezone)).replace(tzinfo=None),
            "occurrence_id": row.id, "status": row.status_at(now).value,
            "attended": len(roster.attendance(db.session(), row.id)) if started else None}


def _listing(*, group_id: int | None, series_id: int | None, query: dict[str, Any]) -> dict[str, Any]:
    session, now = db.session(), utcnow()
    start, end, limit = query["from_"] or now, query["to"], query["limit"]
    after = _read_cursor(query["after"]) if query["after"] else None
    if end is not None and end <= start:
        abort(422, "`to` must be after `from`.", detail={"query": {"to": ["must be after from"]}})
    scope = sa.select(sa.func.count(MeetingSeries.id))
    scope = scope.where(MeetingSeries.group_id == group_id) if group_id else scope.where(MeetingSeries.id == series_id)
    # Meetings on at the cursor come again from agenda(); room for them (a few per series) is asked for.
    spare = 2 * (session.scalar(scope) or 0)
    found = agenda.agenda(session, max(start, after[0]) if after else start, group_id=group_id, series_id=series_id,
                          upcoming=limit + 1 + spare, past=0).upcoming
    entries = [e for e in found if (after is None or (e.starts_at, e.series_id) > after)
               and (end is None or e.starts_at < end)]
    more, entries = len(entries) > limit, entries[:limit]
    rows = {row.id: row for row in session.scalars(sa.select(MeetingOccurrence).where(
        MeetingOccurrence.id.in_([e.occurrence_id for e in entries if e.occurrence_id])))}
    items = []
    for entry in entries:
        row = rows.get(entry.occurrence_id) if entry.occurrence_id else None
        if row is not None:
            items.append(occurrence_view(row, now))
            continue
        series = session.get_one(MeetingSeries, entry.series_id)
        ends = entry.starts_at + dt.timedelta(minutes=series.duration_minutes)
        items.append({"series_id": entry.series_id, "title": entry.title, "original_start": entry.starts_at,
                      "starts_at": entry.starts_at, "ends_at": ends,
                      "local_start": entry.local_start.replace(tzinfo=None),
                      "occurrence_id": None,
                      "status": (OccurrenceStatus.SCHEDULED if ends > now else OccurrenceStatus.ENDED).value,
                      "attended": 0 if entry.starts_at <= now else None})
    last = entries[-1] if entries else None
    return {"items": items, "next": _cursor(last.starts_at, last.series_id) if more and last else None}


@bp.post("/series/<int:series_id>/occurrences/cancel")
@bp.auth_required(auth)
@bp.input(schemas.CancelIn, arg_name="data")
@bp.output(schemas.OccurrenceOut)
@bp.doc(tags=["occurrences"], summary="Cancel one meeting (members who opted in are told once)")
def cancel_occurrence(series_id: int, data: dict[str, Any]) -> dict[str, Any]:
    user, session, now = current_user(), db.session(), utcnow()
    series = series_of_user(series_id)
    row = occurrences.cancel(session, series.id, data["original_start"], now)
    session.flush()
    audit.record(session, user, "occurrence.cancel", group_id=series.group_id, target_type="occurrence",
                 target_id=row.id, detail={"series_id": series.id, "status": "cancelled"})
    session.commit()
    return occurrence_view(row, now)


@bp.post("/series/<int:series_id>/occurrences/move")
@bp.auth_required(auth)
@bp.input(schemas.MoveIn, arg_name="data")
@bp.output(schemas.OccurrenceOut)
@bp.doc(tags=["occurrences"], summary="Move one meeting (to its rule's time: restores it); members are told once")
def move_occurrence(series_id: int, data: dict[str, Any]) -> dict[str, Any]:
    user, session, now = current_user(), db.session(), utcnow()
    series = series_of_user(series_id)
    row = occurrences.move(session, series.id, data["original_start"], data["new_local_start"],
                           data["duration_minutes"], now)
    session.flush()
    audit.record(session, user, "occurrence.move", group_id=series.group_id, target_type="occurrence",
                 target_id=row.id, detail={"series_id": series.id})
    session.commit()
    return occurrence_view(row, now)


def _occurrence(occurrence_id: int) -> MeetingOccurrence:
    session = db.session()
    row = session.get(MeetingOccurrence, occurrence_id)
    if row is None or not access.can_see_group(session, current_user(), row.series.group_id):
        abort(404, f"There is no meeting {occurrence_id}.")
    return row


@bp.get("/occurrences/<int:occurrence_id>")
@bp.auth_required(auth)
@bp.output(schemas.OccurrenceOut)
@bp.doc(tags=["occurrences"], summary="One meeting that has a row (a caller came, or it was cancelled or moved)")
def get_occurrence(occurrence_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    view = occurrence_view(_occurrence(occurrence_id), utcnow())
    return view, 200, {"ETag": conditional.etag_of(schemas.OccurrenceOut(), view)}


@bp.get("/occurrences/<int:occurrence_id>/attendance")
@bp.auth_required(auth)
@bp.output(schemas.AttendanceList)
@bp.doc(tags=["occurrences"], summary="Who attended and for how long (a person who rejoined counts once)")
def get_attendance(occurrence_id: int) -> dict[str, Any]:
    row = _occurrence(occurrence_id)
    return {"occurrence_id": row.id, "items": roster.attendance(db.session(), row.id)}



@bp.get("/series/<int:series_id>/occurrences")
@bp.auth_required(auth)
@bp.input(schemas.OccurrenceQuery, location="query", arg_name="query")
@bp.output(OccurrencePage)
@bp.doc(tags=["occurrences"], summary="A series' meetings that end after `from` (default: now), soonest first")
def list_series_occurrences(series_id: int, query: dict[str, Any]) -> dict[str, Any]:
    series = series_of_user(series_id)
    return _listing(group_id=None, series_id=series.id, query=query)


@bp.get("/groups/<int:group_id>/occurrences")
@bp.auth_required(auth)
@bp.input(schemas.OccurrenceQuery, location="query", arg_name="query")
@bp.output(OccurrencePage)
@bp.doc(tags=["occurrences"], summary="A group's meetings that end after `from` (default: now), soonest first")
def list_group_occurrences(group_id: int, query: dict[str, Any]) -> dict[str, Any]:
    group = access.require_group(db.session(), current_user(), group_id)
    return _listing(group_id=group.id, series_id=None, query=query)
