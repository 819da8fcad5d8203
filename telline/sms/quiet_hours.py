"""Quiet hours: when an ordinary text may not be sent, in the recipient's local time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def zone(group_timezone: str, member_timezone: str | None) -> ZoneInfo:
    """Whose clock quiet hours follow: the member's own time zone when known, else the group's."""
    return ZoneInfo(member_timezone or group_timezone)


def next_allowed(now: dt.datetime, zone: ZoneInfo, start: dt.time, end: dt.time) -> dt.datetime | None:
    """None if a text may go at `now`; else the UTC time quiet hours end.

    The window [start, end) may wrap midnight (21:00–08:00) or not (13:00–14:00);
    start == end means no quiet hours.
    """
    if start == end:
        return None
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    wraps = start > end
    quiet = (t >= start or t < end) if wraps else (start <= t < end)
    if not quiet:
        return None
    day = local.date() + dt.timedelta(days=1) if wraps and t >= start else local.date()
    # Through UTC and back: a wall time that DST skips comes out as the first real instant after.
    return dt.datetime.combine(day, end, tzinfo=zone).astimezone(dt.UTC)


# A text brought forward out of quiet hours goes this long before they begin (21:00 → 20:59).
BEFORE_QUIET = dt.timedelta(minutes=1)


def last_moment_before(moment: dt.datetime, zone: ZoneInfo, start: dt.time, end: dt.time) -> dt.datetime:
    """When a text meant for `moment` (a reminder) goes: `moment` itself if that is outside quiet hours,
    else BEFORE_QUIET before the quiet hours it falls in began — the last allowed moment before it,
    never later than `moment` (so never after the meeting it announces), never earlier than needed.
    The one rule for reminders (telline.scheduling.reminders, telline.voice.reminders)."""
    if next_allowed(moment, zone, start, end) is None:
        return moment
    local = moment.astimezone(zone)
    day = local.date()
    if start > end and local.time().replace(tzinfo=None) < end:
        day -= dt.timedelta(days=1)  # after midnight: the quiet hours began the evening before
    began = dt.datetime.combine(day, start, tzinfo=zone).astimezone(dt.UTC)
    return min(moment, began - BEFORE_QUIET)
