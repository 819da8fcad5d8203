"""Recurring meetings: create and configure a series, find its starts.

A series stores its first start (UTC), an RRULE and its own IANA zone (the group's unless the
coordinator chose another). Recurrence is computed in that zone's wall-clock time, so "Tuesdays
at 19:00" stays 19:00 across DST changes; _utc() is the one place a wall-clock time becomes a
moment, and says what happens to a time that does not exist or exists twice.

What makes a series is checked here, once, for the CLI and the JSON API alike: each
refusal is one sentence a coordinator can act on, never a library's message.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
import secrets
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Protocol, TypedDict, Unpack
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from dateutil.rrule import rrulebase, rrulestr
from sqlalchemy.orm import Session

from telline import zones
from telline.models import Group, Line, MeetingOccurrence, MeetingSeries, OccurrenceStatus, utcnow

ACCESS_CODE_DIGITS = 7  # 10 million codes per line: not guessable in the tries a caller gets


class InvalidSeries(ValueError):
    pass


class BridgeSettings(TypedDict, total=False):
    """How a series' conference behaves; a setting left out is left as it is."""

    join_early_minutes: int
    max_participants: int
    caller_id_joins: bool
    host_leaving_ends: bool
    announce_entries: bool
    record: bool
    wait_url: str  # '' for Twilio's hold music


class SeriesChanges(BridgeSettings, total=False):
    """What update_series() may change; a field left out is left as it is. When, how often and how
    long a series meets changes from a date on: see telline.scheduling.edits.edit_from."""

    title: str
    access_code: str
    host_pin: str
    reminder_offsets: list[int]
    host_user_id: int | None


def create_series(session: Session, *, group: Group, line: Line, title: str, first_start_local: dt.datetime,
                  rrule: str = "FREQ=WEEKLY", duration_minutes: int = 60, timezone: str | None = None,
                  access_code: str | None = None, host_pin: str | None = None,
                  reminder_offsets: list[int] | None = None, host_user_id: int | None = None,
                  now: dt.datetime | None = None, **settings: Unpack[BridgeSettings]) -> MeetingSeries:
    """first_start_local is naive, in the series' zone (`timezone`, IANA; the group's by default):
    what a coordinator types. A code or PIN not given is generated."""
    if first_start_local.tzinfo is not None:
        raise InvalidSeries("give the first start as local time, without a zone")
    if line.group_id != group.id:
        raise InvalidSeries("the dial-in line belongs to another group")
    check_duration(duration_minutes)
    zone_name = timezone or group.timezone
    zone = checked_zone(zone_name)
    rule = checked_rule(rrule, first_start_local, zone, duration_minutes=duration_minutes, now=now or utcnow())
    series = MeetingSeries(group_id=group.id, line_id=line.id, title=title.strip()[:120] or group.name,
                           timezone=zone_name, first_start=_utc(first_start_local, zone),
                           rrule=rule, duration_minutes=duration_minutes)
    series.reminder_offsets = checked_offsets(reminder_offsets) if reminder_offsets is not None else [24 * 60, 15]
    series.host_user_id = host_user_id
    _apply(series, settings)
    series.access_code = (_chosen_code(session, line.id, access_code, "access code") if access_code
                          else _unused_code(session, line.id, also_taken={host_pin} if host_pin else frozenset()))
    series.host_pin = (_chosen_code(session, line.id, host_pin, "host PIN", also_taken={series.access_code})
                       if host_pin else _unused_code(session, line.id, also_taken={series.access_code}))
    session.add(series)
    return series


def update_series(session: Session, series_id: int, **changes: Unpack[SeriesChanges]) -> MeetingSeries:
    """Change a series' title, codes, reminders, host or bridge settings; all are checked before any
    is applied, so nothing changes when one is refused."""
    series = session.get(MeetingSeries, series_id)
    if series is None:
        raise InvalidSeries(f"there is no meeting series {series_id}")
    bridge: BridgeSettings = {k: v for k, v in changes.items()  # type: ignore[assignment]
                              if k in BridgeSettings.__annotations__}
    _apply(MeetingSeries(), bridge)  # checked on a scratch row first
    code, pin = changes.get("access_code"), changes.get("host_pin")
    if code is not None:
        code = _chosen_code(session, series.line_id, code, "access code", but=series.id,
                            also_taken={pin or series.host_pin or ""})
    if pin is not None:
        pin = _chosen_code(session, series.line_id, pin, "host PIN", but=series.id,
                           also_taken={code or series.access_code})
    offsets = changes.get("reminder_offsets")
    offsets = checked_offsets(offsets) if offsets is not None else None
    title = changes.get("title")
    if title is not None and not title.strip():
        raise InvalidSeries("a series needs a title")
    _apply(series, bridge)
    if code is not None:
        series.access_code = code
    if pin is not None:
        series.host_pin = pin
    if offsets is not None:
        series.reminder_offsets = offsets
    if title is not None:
        series.title = title.strip()[:120]
    if "host_user_id" in changes:
        series.host_user_id = changes["host_user_id"]
    return series


def checked_zone(name: str) -> ZoneInfo:
    try:
        return zones.zone(name)
    except zones.UnknownZone as exc:
        raise InvalidSeries(str(exc)) from None


def check_duration(minutes: int) -> None:
    if not 5 <= minutes <= 24 * 60:
        raise InvalidSeries("a meeting lasts between 5 minutes and 24 hours")


MAX_REMINDERS = 5
MAX_REMINDER_MINUTES = 14 * 24 * 60  # two weeks: earlier than that, a reminder is a newsletter


def checked_offsets(offsets: list[int]) -> list[int]:
    """Reminder offsets (minutes before the start), latest-first as stored: [1440, 15]."""
    if len(offsets) > MAX_REMINDERS:
        raise InvalidSeries(f"a series has at most {MAX_REMINDERS} reminders")
    for minutes in offsets:
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_REMINDER_MINUTES:
            raise InvalidSeries(f"a reminder goes 1 minute to 14 days ({MAX_REMINDER_MINUTES} minutes) before "
                                f"the meeting, not {minutes!r}")
    if len(set(offsets)) != len(offsets):
        raise InvalidSeries("each reminder offset is given once")
    return sorted(offsets, reverse=True)


CODE_LENGTHS = (4, 12)  # the column holds 12; fewer than 4 is guessed in a few calls


def _chosen_code(session: Session, line_id: int, code: str, what: str, *, but: int | None = None,
                 also_taken: AbstractSet[str] = frozenset()) -> str:
    """A code a coordinator chose: digits, of a sane length, used by no other series on the line."""
    code = code.strip()
    if not code.isascii() or not code.isdigit() or not CODE_LENGTHS[0] <= len(code) <= CODE_LENGTHS[1]:
        raise InvalidSeries(f"the {what} is {CODE_LENGTHS[0]} to {CODE_LENGTHS[1]} digits")
    if code in also_taken:
        raise InvalidSeries("the access code and the host PIN must differ")
    query = sa.select(MeetingSeries.id).where(
        MeetingSeries.line_id == line_id, sa.or_(MeetingSeries.access_code == code, MeetingSeries.host_pin == code))
    if but is not None:
        query = query.where(MeetingSeries.id != but)
    if session.scalar(query.limit(1)) is not None:
        raise InvalidSeries(f"another meeting on this line uses {code}: choose another {what}")
    return code


def configure_series(session: Session, series_id: int, **settings: Unpack[BridgeSettings]) -> MeetingSeries:
    """Change how a series' bridge behaves (nothing changes when a setting is refused)."""
    series = session.get(MeetingSeries, series_id)
    if series is None:
        raise InvalidSeries(f"there is no meeting series {series_id}")
    _apply(series, settings)
    return series


def _apply(series: MeetingSeries, settings: BridgeSettings) -> None:
    early, most = settings.get("join_early_minutes"), settings.get("max_participants")
    if early is not None and not 0 <= early <= 120:
        raise InvalidSeries("callers may join between 0 and 120 minutes before the start")
    if most is not None and not 2 <= most <= 250:
        raise InvalidSeries("a meeting holds between 2 and 250 callers (Twilio's limit)")
    url = settings.get("wait_url")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidSeries("the hold music must be an http(s) URL, or '' for Twilio's")
        if len(url) > 500:
            raise InvalidSeries("the hold music's URL has at most 500 characters")
    for name, value in settings.items():
        setattr(series, name, (value or None) if name == "wait_url" else value)


# --- the recurrence rule ----------------------------------------------------------------
# RFC 5545 §3.3.10: the parts a rule may have.
RULE_PARTS = ("FREQ", "UNTIL", "COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY",
              "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST")
# A meeting every hour (or minute) is a typo, not a plan: the slot would never end.
MEETING_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
# What a good value looks like, said when dateutil refuses one.
_GOOD_VALUES = {
    "BYDAY": "days are MO, TU, WE, TH, FR, SA, SU, each with an optional number (2TU: the second Tuesday, "
             "-1FR: the last Friday)",
    "BYMONTHDAY": "days of the month are 1 to 31, or -1 to -31 counted from the end",
    "BYMONTH": "months are 1 to 12",
    "BYYEARDAY": "days of the year are 1 to 366, or -1 to -366 counted from the end",
    "BYWEEKNO": "weeks are 1 to 53, or -1 to -53 counted from the end",
    "BYSETPOS": "positions are 1 to 366, or -1 to -366 counted from the end",
    "BYHOUR": "hours are 0 to 23",
    "BYMINUTE": "minutes are 0 to 59",
    "BYSECOND": "seconds are 0 to 59",
    "WKST": "the week starts on MO, TU, WE, TH, FR, SA or SU",
    "UNTIL": "it is a date (20270630), a local time (20270630T190000) or a UTC time (20270630T170000Z)",
}


def checked_rule(rrule: str, first_start_local: dt.datetime, zone: ZoneInfo, *, duration_minutes: int,
                 now: dt.datetime) -> str:
    """The rule as stored — names in upper case, UNTIL in the series' wall-clock time — or
    InvalidSeries saying in one sentence what is wrong with it."""
    text = re.sub(r"(?i)^\s*RRULE:", "", rrule).strip()
    if "\n" in text or ":" in text:
        raise InvalidSeries("give one rule, such as FREQ=WEEKLY;BYDAY=TU (no DTSTART, no second RRULE)")
    parts: dict[str, str] = {}
    for part in text.split(";"):
        name, equals, value = (piece.strip().upper() for piece in part.partition("="))
        if not (name and equals and value):
            raise InvalidSeries(f"each part of the rule looks like NAME=VALUE, separated by ';' "
                                f"(FREQ=WEEKLY;BYDAY=TU), and {part!r} does not")
        if name not in RULE_PARTS:
            raise InvalidSeries(f"{name} is not part of a recurrence rule (RFC 5545 has {', '.join(RULE_PARTS)})")
        if name in parts:
            raise InvalidSeries(f"the rule gives {name} twice")
        parts[name] = value
    freq = parts.get("FREQ")
    if freq is None:
        raise InvalidSeries(f"the rule needs FREQ={', '.join(MEETING_FREQUENCIES)} (e.g. FREQ=WEEKLY;BYDAY=TU)")
    if freq not in MEETING_FREQUENCIES:
        raise InvalidSeries(f"meetings repeat DAILY, WEEKLY, MONTHLY or YEARLY, not {freq}")
    for name in ("COUNT", "INTERVAL"):
        if name in parts and not (parts[name].isdigit() and int(parts[name]) >= 1):
            raise InvalidSeries(f"{name} is a whole number from 1, not {parts[name]}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise InvalidSeries("give COUNT or UNTIL, not both (RFC 5545)")
    if "UNTIL" in parts:
        parts["UNTIL"] = _wall_until(parts["UNTIL"], zone)
    for name, value in parts.items():  # one part at a time, to say which one dateutil refuses
        try:
            rrulestr(f"FREQ={freq};{name}={value}", dtstart=first_start_local)
        except (ValueError, TypeError):
            raise InvalidSeries(f"{name}={value} is not valid: {_GOOD_VALUES.get(name, 'see RFC 5545')}") from None
    stored = ";".join(f"{name}={value}" for name, value in parts.items())
    try:
        rule = rrulestr(stored, dtstart=first_start_local)
    except (ValueError, TypeError):  # each part is fine alone, not together
        raise InvalidSeries(f"the parts of {stored} do not go together (RFC 5545)") from None
    _will_meet(rule, _wall(now, zone) - dt.timedelta(minutes=duration_minutes))
    _does_not_overlap_itself(rule, first_start_local, duration_minutes)
    return stored


def _wall_until(value: str, zone: ZoneInfo) -> str:
    """UNTIL as the series' wall-clock time: with a floating DTSTART (ours) RFC 5545 wants UNTIL
    floating too. A UTC time (…Z) is converted; a date alone means the end of that day."""
    try:
        if value.endswith("Z"):
            moment = dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            return f"{moment.astimezone(zone):%Y%m%dT%H%M%S}"
        if len(value) == 8:
            return f"{dt.datetime.strptime(value, '%Y%m%d'):%Y%m%d}T235959"
        return f"{dt.datetime.strptime(value, '%Y%m%dT%H%M%S'):%Y%m%dT%H%M%S}"
    except ValueError:
        raise InvalidSeries(f"UNTIL={value} is not valid: {_GOOD_VALUES['UNTIL']}") from None


def _will_meet(rule: rrulebase, after_local: dt.datetime) -> None:
    if rule.after(after_local, inc=True) is not None:
        return
    last = rule.before(after_local)
    if last is None:
        raise InvalidSeries("this rule gives no meeting at all (a day that never comes, such as "
                            "BYMONTH=2;BYMONTHDAY=31?)")
    raise InvalidSeries(f"its last meeting was {last:%a %Y-%m-%d %H:%M}: the series would never meet again "
                        "(check the first date, COUNT and UNTIL)")


def _does_not_overlap_itself(rule: rrulebase, first_start_local: dt.datetime, duration_minutes: int) -> None:
    starts = list(rule.xafter(first_start_local, count=400, inc=True))
    length = dt.timedelta(minutes=duration_minutes)
    for one, following in itertools.pairwise(starts):
        if following - one < length:
            raise InvalidSeries(f"its meetings would overlap: one starts {one:%a %Y-%m-%d %H:%M}, the next "
                                f"{following:%H:%M}, and each lasts {duration_minutes} minutes")


def overlapping(session: Session, series: MeetingSeries, now: dt.datetime,
                horizon: dt.timedelta = dt.timedelta(days=366)) -> list[tuple[MeetingSeries, dt.datetime]]:
    """Other active series on the same line that meet while this one does, in the coming year,
    each with the first moment they do. Allowed — callers are told apart by their codes — but a
    coordinator may not mean it."""
    session.flush()
    mine = _spans(series, ZoneInfo(series.timezone), now, horizon)
    found = []
    for other in session.scalars(sa.select(MeetingSeries).where(
            MeetingSeries.line_id == series.line_id, MeetingSeries.id != series.id,
            MeetingSeries.active.is_(True)).order_by(MeetingSeries.id)):
        first = _first_overlap(mine, _spans(other, ZoneInfo(other.timezone), now, horizon))
        if first is not None:
            found.append((other, first))
    return found


def _spans(series: MeetingSeries, zone: ZoneInfo, now: dt.datetime,
           horizon: dt.timedelta) -> list[tuple[dt.datetime, dt.datetime]]:
    length = dt.timedelta(minutes=series.duration_minutes)
    rule = _rule(series.rrule, _wall(series.first_start, zone)).rule
    starts = rule.between(_wall(now - length, zone), _wall(now + horizon, zone), inc=True)
    return [(_utc(start, zone), _utc(start, zone) + length) for start in starts]


def _first_overlap(a: list[tuple[dt.datetime, dt.datetime]],
                   b: list[tuple[dt.datetime, dt.datetime]]) -> dt.datetime | None:
    """Both sorted: walk them together, the one that ends first steps on."""
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][0] < b[j][1] and b[j][0] < a[i][1]:
            return max(a[i][0], b[j][0])
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return None


class SeriesTimes(Protocol):
    """What the time rules read of a series: a MeetingSeries, or the join path's copy of one
    (telline.voice.directory.Series)."""

    @property
    def id(self) -> int: ...
    @property
    def first_start(self) -> dt.datetime: ...
    @property
    def rrule(self) -> str: ...
    @property
    def duration_minutes(self) -> int: ...
    @property
    def join_early_minutes(self) -> int: ...


def next_start(series: SeriesTimes, zone: ZoneInfo, after: dt.datetime) -> dt.datetime | None:
    """The first start at or after `after` (aware), as an aware UTC datetime."""
    found = _rule(series.rrule, _wall(series.first_start, zone)).after(_wall(after, zone))
    return _utc(found, zone) if found else None


def starts_from(series: MeetingSeries, zone: ZoneInfo, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The first `count` starts at or after `after` (aware), soonest first, as aware UTC datetimes."""
    rule = _rule(series.rrule, _wall(series.first_start, zone)).rule
    return [_utc(start, zone) for start in rule.xafter(_wall(after, zone), count=count, inc=True)]


def starts_before(series: MeetingSeries, zone: ZoneInfo, before: dt.datetime, count: int) -> list[dt.datetime]:
    """The last `count` starts at or before `before` (aware), latest first, as aware UTC datetimes."""
    rule = _rule(series.rrule, _wall(series.first_start, zone)).rule
    found: list[dt.datetime] = []
    at = _wall(before, zone)
    while len(found) < count and (start := rule.before(at, inc=not found)) is not None:
        found.append(start)
        at = start
    return [_utc(start, zone) for start in found]


def _wall(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """An aware moment as the naive wall-clock time the rule is computed in."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _utc(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """THE rule for a wall-clock time on a DST change day, as RFC 5545 §3.3.5 has it: a time that
    does not exist (02:30 when clocks jump from 02:00 to 03:00) is read with the offset before the
    gap, so it moves forward by the gap (03:30); a time that exists twice (01:30 when clocks go back
    from 02:00 to 01:00) is the first of the two (fold=0, still summer time)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)


def local_start(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A start's naive wall-clock time, for a coordinator's input read back."""
    return _wall(moment, zone)


def to_utc(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A coordinator's naive wall-clock time as a moment, by _utc()'s rule."""
    return _utc(wall, zone)


class _Rule:
    """A parsed rule that remembers its last answer. dateutil walks a rule from its first
    occurrence on every query (a daily series ten years old: ~0.4 ms a query), and a meeting's
    callers all ask nearly the same question: the first start at or after `after` is the same
    for any `after` between the last one asked and the start it found."""

    def __init__(self, rule: rrulebase):
        self.rule = rule
        self.last: tuple[dt.datetime, dt.datetime] | None = None  # (after, the start found)

    def after(self, after: dt.datetime) -> dt.datetime | None:
        last = self.last
        if last is not None and last[0] <= after <= last[1]:
            return last[1]
        found: dt.datetime | None = self.rule.after(after, inc=True)
        if found is not None:
            self.last = (after, found)  # one assignment: a concurrent reader sees the old or the new pair
        return found


@functools.lru_cache(maxsize=512)
def _rule(rrule: str, local_first: dt.datetime) -> _Rule:
    # Parsed once per process, its occurrences cached (cache=True) for the walks it still makes.
    return _Rule(rrulestr(rrule, dtstart=local_first, cache=True))


# A rule's start that was moved (→ its new (start, end)) or cancelled (→ None), by series.
Changes = Mapping[dt.datetime, tuple[dt.datetime, dt.datetime] | None]
_TICK = dt.timedelta(microseconds=1)


def first_meeting(series: SeriesTimes, zone: ZoneInfo, now: dt.datetime,
                  changed: Changes) -> tuple[dt.datetime, dt.datetime] | None:
    """The series' first meeting that ends after `now`, as (start, end) in UTC: the rule's, with its
    moved meetings where they now are and its cancelled ones left out. THE rule for "which meeting"
    once occurrences move: the join path, next_meeting and the agenda all read it."""
    length = dt.timedelta(minutes=series.duration_minutes)
    start = next_start(series, zone, now - length + _TICK)
    while start is not None and start in changed:
        start = next_start(series, zone, start + _TICK)
    best = (start, start + length) if start is not None else None
    for moved in changed.values():
        if moved is not None and moved[1] > now and (best is None or moved[0] < best[0]):
            best = moved
    return best


def changes(session: Session, series_ids: list[int], since: dt.datetime) -> Mapping[int, Changes]:
    """Each series' moved and cancelled meetings from `since` on (rows are few: a caller, a
    cancellation or a move makes one), for first_meeting()."""
    found: dict[int, dict[dt.datetime, tuple[dt.datetime, dt.datetime] | None]] = {i: {} for i in series_ids}
    if not series_ids:
        return found
    rows = session.execute(sa.select(MeetingOccurrence.series_id, MeetingOccurrence.original_start,
                                     MeetingOccurrence.starts_at, MeetingOccurrence.ends_at,
                                     MeetingOccurrence.status, MeetingSeries.duration_minutes)
                           .join(MeetingSeries, MeetingSeries.id == MeetingOccurrence.series_id)
                           .where(MeetingOccurrence.series_id.in_(series_ids),
                                  sa.or_(MeetingOccurrence.ends_at > since,
                                         MeetingOccurrence.original_start >= since - dt.timedelta(days=1))))
    for series_id, original, start, end, status, minutes in rows:
        if status == OccurrenceStatus.CANCELLED:
            found[series_id][original] = None
        elif start != original or end != original + dt.timedelta(minutes=minutes):
            found[series_id][original] = (start, end)
    return {i: found_one for i, found_one in found.items()}


def next_meeting(session: Session, group: Group, now: dt.datetime) -> tuple[MeetingSeries, dt.datetime] | None:
    """The group's next meeting, or the one on now, where it now is (moved); never a cancelled one.
    Every "next meeting" a member hears or reads comes from here (the phone, "press 1" for a
    reminder, NEXT)."""
    series_list = session.scalars(sa.select(MeetingSeries).where(
        MeetingSeries.group_id == group.id, MeetingSeries.active.is_(True))).all()
    if not series_list:
        return None
    earliest = now - dt.timedelta(minutes=max(series.duration_minutes for series in series_list))
    changed = changes(session, [series.id for series in series_list], earliest)
    best = None
    for series in series_list:
        found = first_meeting(series, ZoneInfo(series.timezone), now, changed[series.id])
        if found and (best is None or found[0] < best[1]):
            best = (series, found[0])
    return best


def _unused_code(session: Session, line_id: int, also_taken: AbstractSet[str] = frozenset()) -> str:
    """A code no meeting on this line uses, as an access code or a host PIN."""
    rows = session.execute(sa.select(MeetingSeries.access_code, MeetingSeries.host_pin)
                           .where(MeetingSeries.line_id == line_id))
    taken = {code for row in rows for code in row if code} | set(also_taken)
    while True:
        code = f"{secrets.randbelow(10 ** ACCESS_CODE_DIGITS):0{ACCESS_CODE_DIGITS}d}"
        if code not in taken and len(set(code)) > 2:  # no 0000000 or 1212121
            return code


def deactivate_series(session: Session, series_id: int) -> MeetingSeries:
    """End a series: callers hear its meetings no more, the calendar feed drops it, and the next
    reminder tick cancels its pending reminders. Its past meetings and attendance stay."""
    series = session.get(MeetingSeries, series_id)
    if series is None:
        raise InvalidSeries(f"there is no meeting series {series_id}")
    series.active = False
    session.flush()
    return series
