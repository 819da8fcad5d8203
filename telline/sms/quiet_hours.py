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
