"""'No meeting now — press 1 for a text reminder': consent from the key press, a text now
to confirm, and the reminder itself before the meeting."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline import phone
from telline.models import Call, Line, utcnow
from telline.scheduling.series import next_meeting
from telline.sms import consent, quiet_hours
from telline.sms.outbound import send_text
from telline.texts import t, when

REMIND_BEFORE = dt.timedelta(hours=2)
# set: the reminder is queued · not_set: no 1, or nothing to remind of · texts_stopped: the caller
# texted STOP, and Twilio refuses every text to that number until it texts START
Outcome = Literal["set", "not_set", "texts_stopped"]


def request_reminder(session: Session, *, call_sid: str, digits: str | None) -> tuple[str, Outcome]:
    """(the group's language, what became of the request)."""
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid))
    line = session.get(Line, call.line_id) if call is not None and call.line_id else None
    if call is None or line is None:
        return "en", "not_set"
    group = line.group
    if (digits or "").strip() != "1" or not call.from_number:
        return group.language, "not_set"
    now = utcnow()
    found = next_meeting(session, group, now)
    if found is None:
        return group.language, "not_set"
    if consent.is_opted_out(session, call.from_number):
        # A key press does not lift an opt-out made by text (Twilio would still refuse, 21610): no
        # opt-in recorded, no text queued; the caller hears how to opt back in.
        return group.language, "texts_stopped"
    series, start = found
    consent.record(session, call.from_number, consent.OPT_IN, "voice_menu", group_id=group.id,
                   detail="pressed 1 for a reminder")
    said_when = when(start, group.timezone, group.language)
    number = phone.for_display(series.line.phone_number)
    send_text(session, line=line, to=call.from_number, body=t("sms.reminder_set", group.language,
                                                             group=group.name, when=said_when),
              idempotency_key=f"reminder-set:{call_sid}", member_id=call.member_id, urgent=True, kind="reply")
    send_text(session, line=line, to=call.from_number,
              body=t("sms.reminder", group.language, group=group.name, when=said_when, number=number,
                     code=series.access_code),
              idempotency_key=f"reminder:{series.id}:{start:%Y%m%dT%H%M}:{call.from_number}",
              member_id=call.member_id, kind="reminder",
              send_at=max(now, remind_at(start, group.timezone, group.quiet_start, group.quiet_end)))
    session.commit()
    return group.language, "set"


def remind_at(start: dt.datetime, timezone: str, quiet_start: dt.time, quiet_end: dt.time) -> dt.datetime:
    """REMIND_BEFORE the meeting, or the last moment before quiet hours if that falls in them."""
    return quiet_hours.last_moment_before(start - REMIND_BEFORE, quiet_hours.zone(timezone, None),
                                          quiet_start, quiet_end)
