"""The live meeting page: its roster, updated in place, and the host's controls.

The roster is polled once a second (htmx `every 1s` on a small fragment) rather than pushed with
server-sent events: gunicorn's sync workers (deploy/) would give each open page a worker for as long
as it stays open, and a few coordinators watching would starve Twilio's webhooks. A poll costs one
short request and reads the same rows the callbacks write, so the page shows a change within about
a second of Twilio's callback. Without JavaScript the page still works: buttons are forms, and the
page has a refresh link.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from telline import db
from telline.accounts.access import NotFound
from telline.admin.sessions import check_csrf, page_user
from telline.voice import live
from telline.voice.moderation import PARTICIPANT_ACTIONS, ModerationError

bp = Blueprint("console_live", __name__, template_folder="templates")
bp.before_request(check_csrf)

REQUESTED = {"mute": "Mute asked", "unmute": "Unmute asked", "hold": "Hold asked", "unhold": "Resume asked",
             "kick": "Removal asked", "mute-all": "Mute all asked", "lock": "Meeting locked",
             "unlock": "Meeting unlocked", "end": "Ending the meeting", "announce": "Announcement sent"}



def _meeting(occurrence_id: int) -> live.LiveMeeting:
    try:
        return live.live_meeting(db.session(), page_user(), occurrence_id)
    except NotFound:
        abort(404)


@bp.get("/meetings/<int:occurrence_id>/live")
@login_required
def page(occurrence_id: int) -> ResponseReturnValue:
    return render_template("admin/live.html", user=page_user(), meeting=_meeting(occurrence_id),
                           actions=PARTICIPANT_ACTIONS)


@bp.get("/meetings/<int:occurrence_id>/live/roster")
@login_required
def roster_fragment(occurrence_id: int) -> ResponseReturnValue:
    return render_template("admin/_roster.html", meeting=_meeting(occurrence_id))


@bp.post("/meetings/<int:occurrence_id>/live/participants/<int:participant_id>/<action>")
@login_required
def participant_action(occurrence_id: int, participant_id: int, action: str) -> ResponseReturnValue:
    return _done(occurrence_id, action, lambda: live.act_on_participant(
        db.session(), page_user(), occurrence_id, participant_id, action))


@bp.post("/meetings/<int:occurrence_id>/live/<any('mute-all', lock, unlock, end):action>")
@login_required
def meeting_action(occurrence_id: int, action: str) -> ResponseReturnValue:
    return _done(occurrence_id, action, lambda: live.act_on_meeting(db.session(), page_user(), occurrence_id, action))


@bp.post("/meetings/<int:occurrence_id>/live/announce")
@login_required
def announce(occurrence_id: int) -> ResponseReturnValue:
    text = request.form.get("text", "")[:2000]
    return _done(occurrence_id, "announce", lambda: live.announce(db.session(), page_user(), occurrence_id, text))


def _done(occurrence_id: int, action: str, act: Callable[[], object]) -> ResponseReturnValue:
    session = db.session()
    try:
        act()
    except NotFound:
        session.rollback()
        abort(404)
    except ModerationError as exc:
        session.rollback()
        flash(str(exc).capitalize() + ".", "error")
    else:
        session.commit()  # the job is enqueued after this commit (tasks.enqueue_after_commit)
        flash(f"{REQUESTED.get(action, 'Done')}. The roster shows it once Twilio confirms.", "info")
    return redirect(url_for("console_live.page", occurrence_id=occurrence_id), code=303)
