"""A group's meetings as an iCalendar feed (RFC 5545), for calendar apps to subscribe to.

One VEVENT per active series: its rule as stored, in its own zone (DTSTART;TZID=…), cancelled
meetings as EXDATEs, moved ones as VEVENTs of the same UID with RECURRENCE-ID (the rule's start)
and their new times. Cancellations are EXDATEs rather than RECURRENCE-ID events with
STATUS:CANCELLED: Google Calendar, Apple Calendar and Outlook all drop an EXDATE's instance from a
subscribed feed, while Outlook and older Apple versions show a cancelled override as a meeting.

Only what members are told anyway: the dial-in number and access code. Never the host PIN, never
a member's name or number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from icalendar import Calendar, Event, vRecur
from sqlalchemy.orm import Session

from telline.models import Group, MeetingOccurrence, MeetingSeries, OccurrenceStatus
from telline.phone import for_display
from telline.texts import t

PRODID = "-//telline//meeting calendar//EN"
# How often calendar apps should fetch the feed again (RFC 7986, and Outlook's X-PUBLISHED-TTL).
REFRESH = dt.timedelta(hours=1)


class UnknownGroup(LookupError):
    pass


def feed(session: Session, group_id: int, now: dt.datetime, *, domain: str = "telline") -> bytes:
    """The group's calendar. `domain` makes the UIDs unique to this instance (the public URL's host)."""
    group = session.get(Group, group_id)
    if group is None:
        raise UnknownGroup(f"there is no group {group_id}")
    cal = Calendar.new(name=group.name, prodid=PRODID, method="PUBLISH", refresh_interval=REFRESH,
                       uid=f"group-{group.id}@{domain}")
    cal.add("x-published-ttl", REFRESH)
    cal.add("x-wr-timezone", group.timezone)
    series_list = session.scalars(sa.select(MeetingSeries).where(
        MeetingSeries.group_id == group_id, MeetingSeries.active.is_(True)).order_by(MeetingSeries.id)).all()
    rows: dict[int, list[MeetingOccurrence]] = {series.id: [] for series in series_list}
    for row in session.scalars(sa.select(MeetingOccurrence).where(
            MeetingOccurrence.series_id.in_(list(rows))).order_by(MeetingOccurrence.original_start)):
        rows[row.series_id].append(row)
    for series in series_list:
        for event in _events(series, group, rows[series.id], now, domain):
            cal.add_component(event)
    if series_list:  # VTIMEZONEs from zoneinfo, over the years the meetings span
        first = min(series.first_start for series in series_list).date() - dt.timedelta(days=1)
        cal.add_missing_timezones(first_date=first, last_date=max(dt.date(2038, 1, 1),
                                                                  now.date() + dt.timedelta(days=3660)))
    body: bytes = cal.to_ical()
    return body


def _events(series: MeetingSeries, group: Group, rows: list[MeetingOccurrence], now: dt.datetime,
            domain: str) -> list[Event]:
    zone = ZoneInfo(series.timezone)
    length = dt.timedelta(minutes=series.duration_minutes)
    uid = f"series-{series.id}@{domain}"
    summary = series.title or group.name
    description = t("calendar.description", group.language, number=for_display(series.line.phone_number),
                    code=series.access_code)
    location = t("calendar.location", group.language, number=for_display(series.line.phone_number))
    master = Event.new(uid=uid, summary=summary, description=description, location=location, stamp=now,
                       start=series.first_start.astimezone(zone),
                       end=(series.first_start + length).astimezone(zone))
    master.add("rrule", _rule_for_feed(series.rrule, zone))
    cancelled = [row.original_start.astimezone(zone) for row in rows if row.status == OccurrenceStatus.CANCELLED]
    if cancelled:
        master.add("exdate", cancelled)
    events = [master]
    for row in rows:
        if row.status != OccurrenceStatus.CANCELLED and row.starts_at != row.original_start:
            events.append(Event.new(uid=uid, summary=summary, description=description, location=location,
                                    stamp=now, recurrence_id=row.original_start.astimezone(zone),
                                    start=row.starts_at.astimezone(zone), end=row.ends_at.astimezone(zone)))
    return events


def _rule_for_feed(stored: str, zone: ZoneInfo) -> vRecur:
    """The stored rule, with UNTIL in UTC: telline keeps it in wall-clock time (its DTSTART is
    floating), and RFC 5545 wants a UTC UNTIL beside a DTSTART with a TZID."""
    rule: vRecur = vRecur.from_ical(stored)
    if "UNTIL" in rule:
        until = rule["UNTIL"][0]
        if isinstance(until, dt.datetime) and until.tzinfo is None:
            rule["UNTIL"] = [until.replace(tzinfo=zone).astimezone(dt.UTC)]
    return rule


def etag(body: bytes) -> str:
    """A weak ETag naming the feed's content: the same meetings give the same tag, whenever the
    feed was written (DTSTAMP, the moment of writing, is left out)."""
    digest = hashlib.sha256()
    for line in body.splitlines():
        if not line.startswith(b"DTSTAMP:"):
            digest.update(line)
    return f'W/"{digest.hexdigest()[:32]}"'
