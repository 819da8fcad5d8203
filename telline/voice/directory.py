"""What a call needs to know about a line — its group and its active meeting series — read
once and kept for a few seconds by each web worker.

At a meeting's start every caller asks the same question of the same line within
seconds; answering it from memory is what keeps the join path to one statement per
request (tests/bench/bench_meeting_surge.py). A coordinator's change reaches callers
within TTL seconds. What must take effect at once (a meeting cancelled, ended or locked)
lives on the occurrence, which is always read fresh. A change made through this process's
ORM (a coordinator's page, the CLI) is seen at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from telline.models import Group, Line, MeetingOccurrence, MeetingSeries, utcnow
from telline.scheduling.series import Changes, changes
from telline.voice.meetings import joinable_start

TTL = 5.0  # seconds
# How a line was asked for: by its number or by its id.
_Key = tuple[Literal["number"], str] | tuple[Literal["id"], int]


@dataclasses.dataclass(frozen=True)
class Series:
    """A meeting series as the join path reads it (next_start() takes it like a MeetingSeries)."""
    id: int
    timezone: str  # the series' own zone: its rule is computed in it
    first_start: dt.datetime
    rrule: str
    duration_minutes: int
    join_early_minutes: int
    access_code: str
    host_pin: str | None
    max_participants: int
    caller_id_joins: bool
    host_leaving_ends: bool
    announce_entries: bool
    record_names: bool
    record: bool
    wait_url: str | None

    @classmethod
    def of(cls, row: MeetingSeries) -> Series:
        return cls(**{f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class LineInfo:
    line_id: int
    group_id: int
    group_name: str
    language: str
    timezone: str
    series: tuple[Series, ...]  # active ones, oldest first
    # Their moved (and cancelled) meetings near now, by series id: a moved one is joined where it is.
    moved: Mapping[int, Changes] = dataclasses.field(default_factory=dict)

    def on_now(self, now: dt.datetime) -> list[tuple[Series, dt.datetime]]:
        """(series, start) of every meeting a caller may join at `now`."""
        return [(s, start) for s in self.series
                if (start := joinable_start(s, ZoneInfo(s.timezone), now, self.moved.get(s.id)))]


_SERIES_COLUMNS = [MeetingSeries.__table__.c[f.name] for f in dataclasses.fields(Series)]
_QUERY = (sa.select(Line.id, Line.group_id, Group.name, Group.language, Group.timezone, *_SERIES_COLUMNS)
          .join(Group, Group.id == Line.group_id)
          .outerjoin(MeetingSeries, sa.and_(MeetingSeries.line_id == Line.id, MeetingSeries.active.is_(True)))
          .order_by(MeetingSeries.id))
_BY_NUMBER = _QUERY.where(Line.phone_number == sa.bindparam("number"))
_BY_ID = _QUERY.where(Line.id == sa.bindparam("line_id"))


class LineDirectory:
    """One per app (so per web worker): LineInfo by number or id, kept TTL seconds."""

    def __init__(self, ttl: float = TTL):
        self.ttl = ttl
        self._kept: dict[_Key, tuple[float, LineInfo | None]] = {}
        self._languages: dict[str, str] = {}  # line number → its group's language; never forgotten
        self._lock = threading.Lock()

    def by_number(self, session: Session, number: str | None) -> LineInfo | None:
        return self._read(session, ("number", number), _BY_NUMBER, {"number": number}) if number else None

    def by_id(self, session: Session, line_id: int | None) -> LineInfo | None:
        return self._read(session, ("id", line_id), _BY_ID, {"line_id": line_id}) if line_id else None

    def language_of(self, number: str | None) -> str | None:
        """The language of the line at `number` as this process last read it, however long ago; None
        if it never did. For what a caller hears when the database does not answer."""
        return self._languages.get(number) if number else None

    def forget(self) -> None:
        """Drop everything kept: the next call reads afresh (tests; after changing a line here)."""
        with self._lock:
            self._kept.clear()

    def _read(self, session: Session, key: _Key, query: sa.Select[*tuple[Any, ...]],
              params: dict[str, object]) -> LineInfo | None:
        hit = self._kept.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        rows = session.connection().execute(query, params).all()
        info = None
        if rows:
            first = rows[0]
            series = tuple(Series(*row[5:]) for row in rows if row[5] is not None)
            # A day back covers any meeting still on; a move is made ahead, so a day is plenty.
            moved = changes(session, [s.id for s in series], utcnow() - dt.timedelta(days=1))
            info = LineInfo(first[0], first[1], first[2], first[3], first[4], series,
                            {i: found for i, found in moved.items() if found})
        expires = time.monotonic() + self.ttl
        with self._lock:
            self._kept[key] = (expires, info)
            if info is not None:  # the other way to ask for the same line
                self._kept[("id", info.line_id)] = (expires, info)
                if key[0] == "number":
                    self._languages[key[1]] = info.language
        return info


def directory() -> LineDirectory:
    """This app's directory."""
    return cast(LineDirectory, current_app.extensions.setdefault("telline.line_directory", LineDirectory()))


@sa.event.listens_for(Session, "after_flush")
def _forget_changed_lines(session: Session, _flush_context: object) -> None:
    """A line, group or series changed through this process's ORM, or a meeting moved or cancelled:
    the next caller reads afresh (other processes within TTL). A first caller's new occurrence row
    changes nothing the directory keeps."""
    if has_app_context() and any(
            isinstance(obj, (Line, Group, MeetingSeries)) or (isinstance(obj, MeetingOccurrence) and (
                obj in session.dirty or obj.starts_at != obj.original_start))
            for obj in (*session.new, *session.dirty, *session.deleted)):
        directory().forget()
