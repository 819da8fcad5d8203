"""/series: a group's recurring meetings, through the same services as `telline meeting` (the same
checks, the same sentences when refused)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apiflask import abort

from telline import db
from telline.accounts import access, audit
from telline.api import conditional, paging, schemas
from telline.api.auth import auth, current_user
from telline.api.blueprint import bp
from telline.models import Line, MeetingSeries, User, utcnow
from telline.scheduling import edits
from telline.scheduling import series as series_service

SeriesPage = paging.page_schema(schemas.SeriesOut, "SeriesPage")
_CHANGES = tuple(schemas.SeriesPatch().fields)


def series_view(series: MeetingSeries) -> dict[str, Any]:
    view = {name: getattr(series, name) for name in schemas.SeriesOut().fields if hasattr(series, name)}
    view["first_start_local"] = series_service.local_start(series.first_start, ZoneInfo(series.timezone))
    return view


def series_of_user(series_id: int) -> MeetingSeries:
    """The series, if the caller has its group (404 for another group's, as for none)."""
    session = db.session()
    series = session.get(MeetingSeries, series_id)
    if series is None or not access.can_see_group(session, current_user(), series.group_id):
        abort(404, f"There is no meeting series {series_id}.")
    return series


def _check_host(group_id: int, host_user_id: int | None) -> None:
    """A series' host is a user who has its group (hosting gives no group of its own)."""
    if host_user_id is None:
        return
    session = db.session()
    host = session.get(User, host_user_id)
    if host is None or not access.can_see_group(session, host, group_id):
        raise series_service.InvalidSeries(f"user {host_user_id} cannot host this group's meetings: give them "
                                           "the group first")


@bp.post("/groups/<int:group_id>/series")
@bp.auth_required(auth)
@bp.input(schemas.SeriesIn, arg_name="data")
@bp.output(schemas.SeriesCreated, status_code=201)
@bp.doc(tags=["series"], summary="Schedule a recurring meeting; codes not given are generated")
def create_series(group_id: int, data: dict[str, Any]) -> dict[str, Any]:
    user, session = current_user(), db.session()
    group = access.require_group(session, user, group_id)
    line = session.get(Line, data.pop("line_id"))
    if line is None or line.group_id != group.id:
        raise series_service.InvalidSeries("the dial-in line is not one of this group's lines")
    _check_host(group.id, data.get("host_user_id"))
    now = utcnow()
    series = series_service.create_series(session, group=group, line=line, now=now, **data)
    session.flush()
    overlaps = series_service.overlapping(session, series, now)
    audit.record(session, user, "series.create", group_id=group.id, target_type="series", target_id=series.id,
                 detail={"line_id": line.id})
    session.commit()
    return {**series_view(series), "overlaps": [{"series_id": other.id, "first": first} for other, first in overlaps]}


@bp.get("/series/<int:series_id>")
@bp.auth_required(auth)
@bp.output(schemas.SeriesOut)
@bp.doc(tags=["series"], summary="One series")
def get_series(series_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    view = series_view(series_of_user(series_id))
    return view, 200, {"ETag": conditional.etag_of(schemas.SeriesOut(), view)}


@bp.patch("/series/<int:series_id>")
@bp.auth_required(auth)
@bp.input(schemas.SeriesPatch, arg_name="data")
@bp.output(schemas.SeriesOut)
@bp.doc(tags=["series"], summary="Change title, codes, reminders, host or bridge options; If-Match refuses a "
                                 "lost update. When and how often: POST …/edit-from")
def update_series(series_id: int, data: dict[str, Any]) -> dict[str, Any]:
    user, session = current_user(), db.session()
    series = series_of_user(series_id)
    before = series_view(series)
    conditional.check_if_match(schemas.SeriesOut(), before)
    if "host_user_id" in data:
        _check_host(series.group_id, data["host_user_id"])
    series_service.update_series(session, series.id, **{k: v for k, v in data.items() if k in _CHANGES})
    after = series_view(series)
    changed = sorted(k for k in after if after[k] != before[k])
    if changed:
        audit.record(session, user, "series.update", group_id=series.group_id, target_type="series",
                     target_id=series.id, detail={"fields": changed})
    session.commit()
    return after


@bp.post("/series/<int:series_id>/edit-from")
@bp.auth_required(auth)
@bp.input(schemas.EditFrom, arg_name="data")
@bp.output(schemas.SeriesOut, status_code=201)
@bp.doc(tags=["series"], summary="New time, rule or length from a date on: returns the continuation series")
def edit_series_from(series_id: int, data: dict[str, Any]) -> dict[str, Any]:
    user, session = current_user(), db.session()
    series = series_of_user(series_id)
    continuation = edits.edit_from(session, series.id, data["from_date"], first_start_local=data["first_start_local"],
                                   rrule=data["rrule"], duration_minutes=data["duration_minutes"])
    session.flush()
    audit.record(session, user, "series.edit_from", group_id=series.group_id, target_type="series",
                 target_id=series.id, detail={"series_id": continuation.id,
                                              "fields": [k for k in ("first_start_local", "rrule", "duration_minutes")
                                                         if data[k] is not None]})
    session.commit()
    return series_view(continuation)


@bp.delete("/series/<int:series_id>")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(tags=["series"], summary="End a series (its past meetings and attendance stay)")
def deactivate_series(series_id: int) -> tuple[str, int]:
    user, session = current_user(), db.session()
    series = series_of_user(series_id)
    if series.active:
        series_service.deactivate_series(session, series.id)
        audit.record(session, user, "series.deactivate", group_id=series.group_id, target_type="series",
                     target_id=series.id)
    session.commit()
    return "", 204



@bp.get("/groups/<int:group_id>/series")
@bp.auth_required(auth)
@bp.input(paging.PageQuery, location="query", arg_name="query")
@bp.output(SeriesPage)
@bp.doc(tags=["series"], summary="A group's meeting series (ended ones too: see `active`)")
def list_series(group_id: int, query: dict[str, Any]) -> dict[str, Any]:
    session = db.session()
    group = access.require_group(session, current_user(), group_id)
    page = paging.by_id(session, sa.select(MeetingSeries).where(MeetingSeries.group_id == group.id),
                        MeetingSeries.id, query["limit"], query["after"])
    return {**page, "items": [series_view(s) for s in page["items"]]}
