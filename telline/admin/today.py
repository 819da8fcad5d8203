"""Today: the first page a coordinator sees — the next meetings of their groups."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_login import login_required

from telline import db
from telline.accounts import access
from telline.admin.sessions import check_csrf, page_user
from telline.models import Group, utcnow
from telline.scheduling.agenda import agenda

bp = Blueprint("console_today", __name__, template_folder="templates", static_folder="static",
               static_url_path="/console/static")
bp.before_request(check_csrf)
NEXT_PER_GROUP = 5


@bp.get("/")
@login_required
def today() -> ResponseReturnValue:
    user = page_user()
    session = db.session()
    now = utcnow()
    groups = session.scalars(sa.select(Group).where(Group.id.in_(access.group_filter(user))).order_by(Group.name))
    meetings = [(group, agenda(session, now, group_id=group.id, upcoming=NEXT_PER_GROUP, past=0).upcoming)
                for group in groups]
    return render_template("admin/today.html", user=user, meetings=meetings, now=now)
