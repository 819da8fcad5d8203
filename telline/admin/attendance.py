"""Attendance pages: a group's recent meetings (a chart and a table), one meeting's attendees, and
their CSV exports. Exporting is in the audit log."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template
from flask.typing import ResponseReturnValue
from flask_login import login_required

from telline import db
from telline.accounts import audit
from telline.accounts.access import NotFound
from telline.admin.sessions import check_csrf, page_user
from telline.models import Group, utcnow
from telline.spreadsheet import csv_text
from telline.voice.attendance import GroupAttendance, MeetingAttendance, group_attendance, meeting_attendance

bp = Blueprint("console_attendance", __name__, template_folder="templates")
bp.before_request(check_csrf)



def _group(group_id: int) -> tuple[Group, GroupAttendance]:
    session = db.session()
    try:
        report = group_attendance(session, page_user(), group_id, utcnow())
    except NotFound:
        abort(404)
    return session.get_one(Group, group_id), report


def _meeting(occurrence_id: int) -> MeetingAttendance:
    try:
        return meeting_attendance(db.session(), page_user(), occurrence_id)
    except NotFound:
        abort(404)


@bp.get("/groups/<int:group_id>/attendance")
@login_required
def group_page(group_id: int) -> ResponseReturnValue:
    group, report = _group(group_id)
    return render_template("admin/attendance.html", user=page_user(), group=group, report=report,
                           most=max((m.attended or 0 for m in report.meetings), default=0))


@bp.get("/meetings/<int:occurrence_id>/attendance")
@login_required
def meeting_page(occurrence_id: int) -> ResponseReturnValue:
    return render_template("admin/meeting_attendance.html", user=page_user(), meeting=_meeting(occurrence_id))


@bp.get("/groups/<int:group_id>/attendance.csv")
@login_required
def group_csv(group_id: int) -> ResponseReturnValue:
    group, report = _group(group_id)
    text = csv_text(["date", "time", "zone", "meeting", "status", "attended"],
                    [(m.local_start.date().isoformat(), m.local_start.strftime("%H:%M"), m.local_start.tzname(),
                      m.title, m.status or "not held", m.attended or 0) for m in report.meetings])
    return _export(text, f"attendance-group-{group.id}.csv", "attendance.export", group.id)


@bp.get("/meetings/<int:occurrence_id>/attendance.csv")
@login_required
def meeting_csv(occurrence_id: int) -> ResponseReturnValue:
    meeting = _meeting(occurrence_id)
    text = csv_text(["name", "role", "minutes"], [(p.shown_as, p.role, p.minutes) for p in meeting.people])
    return _export(text, f"attendance-meeting-{meeting.occurrence_id}.csv", "attendance.export", meeting.group_id,
                   occurrence_id=meeting.occurrence_id)


def _export(text: str, filename: str, action: str, group_id: int, **detail: int) -> Response:
    session = db.session()
    audit.record(session, page_user(), action, group_id=group_id, detail=dict(detail))
    session.commit()
    return Response(text, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
