"""telline's app with benchmark-only changes applied (for bench_meeting_surge / profile_join_path).

NOT telline's code: each variant is a PROTOTYPE of a change recommended for telline/,
applied to one app object after create_app() (its engine, its two join-path views), to
measure it side by side with the unchanged app. Under gunicorn:

    BENCH_SURGE_VARIANT=lean+nopreping gunicorn ... 'tests.bench._surge_variants:create_app()'

Variants (joined with +):
- nopreping: the PostgreSQL engine without pool_pre_ping (telline.db.make_engine), i.e. no
  extra `;` round trip each time a session checks a connection out (3 per join path today).
- onetx:     POST /twilio/voice in one transaction: the Call row is flushed, not committed,
  and committed once at the end (today: commit, then a second transaction with its own
  checkout + ping + BEGIN + ROLLBACK for the group and the series).
- lean:      the join path with fewer, joined statements (includes onetx):
    /twilio/voice       1 SELECT line ⋈ group ⟕ active series, 1 INSERT … ON CONFLICT DO NOTHING
                        (member id as a scalar subquery) RETURNING member_id, 1 COMMIT;
    /twilio/voice/code  1 SELECT call ⋈ line ⋈ group ⟕ active series, 1 SELECT occurrence +
                        present-participant count (correlated subquery), 1 UPDATE, 1 COMMIT.
  Same rules and same answers as telline.voice.incoming; every uncommon branch (unknown line
  or call, wrong or missing code, meeting not on, caller-ID joins, first caller of the
  occurrence, cancelled/ended/locked meeting) goes through telline's own functions.
- lean2:     lean + a per-process cache (CONFIG_TTL seconds) of each line's group and active
  series, and narrow Core statements built once (see _lean2).
- rrulecache: next_start with the parsed RRULE memoised (process-wide: see _rrulecache).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from zoneinfo import ZoneInfo

import sqlalchemy as sa

log = logging.getLogger("telline.voice.incoming")


def _nopreping(app):
    from telline.db import EXTENSION
    database = app.extensions[EXTENSION]
    if database.url.startswith("sqlite"):
        return
    database.engine.dispose()
    database.engine = sa.create_engine(database.url)  # telline.db.make_engine minus pool_pre_ping
    database.sessionmaker.configure(bind=database.engine)


def _views(app, receive_call=None, enter_code=None):
    """Swap the two join-path views of this app only (same parsing and rendering as telline's)."""
    from flask import request

    from telline import db
    from telline.voice import webhooks as w

    if receive_call:
        def incoming_call():
            answer = receive_call(db.session(), call_sid=w._call_sid(), from_raw=request.form.get("From"),
                                  to_raw=request.form.get("To"), status=request.form.get("CallStatus"),
                                  base_url=w._base_url(), lockout=w._lockout())
            return w._render(answer)
        app.view_functions["twilio.voice.incoming_call"] = incoming_call
    if enter_code:
        def code_entered():
            answer = enter_code(db.session(), call_sid=w._call_sid(), digits=request.form.get("Digits"),
                                base_url=w._base_url(), lockout=w._lockout())
            return w._render(answer)
        app.view_functions["twilio.voice.code_entered"] = code_entered


def _onetx(app):
    import types

    from telline.models import Call, Member
    from telline.voice import incoming

    def _call_row(session, call_sid, caller, line, called, status):
        call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid))
        if call is None:
            member_id = session.scalar(sa.select(Member.id).where(Member.phone == caller)) if caller else None
            call = Call(twilio_sid=call_sid, direction="inbound", line_id=line.id if line else None,
                        member_id=member_id, from_number=caller, to_number=called,
                        status=(status or "ringing")[:16])
            session.add(call)
            session.flush()  # not committed here: committed once, after receive_call
        return call

    # telline's receive_call, unchanged, seeing this _call_row
    same_code = types.FunctionType(incoming.receive_call.__code__, dict(vars(incoming), _call_row=_call_row),
                                   "receive_call", None, incoming.receive_call.__closure__)
    same_code.__kwdefaults__ = incoming.receive_call.__kwdefaults__

    def receive_call(session, **kwargs):
        answer = same_code(session, **kwargs)
        session.commit()
        return answer
    _views(app, receive_call=receive_call)


def _on_now(series_list, group, now):
    """telline.voice.meetings.on_now over series already loaded (same rule, no query)."""
    from telline.scheduling.series import next_start
    zone = ZoneInfo(group.timezone)
    found = []
    for series in series_list:
        length = dt.timedelta(minutes=series.duration_minutes)
        start = next_start(series, zone, now - length)
        if start and start - dt.timedelta(minutes=series.join_early_minutes) <= now < start + length:
            found.append((series, start))
    return found


def _lean(app):
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    from telline import phone
    from telline.models import (Call, ConferenceParticipant as CP, Group, Line, MeetingOccurrence as MO,
                                MeetingSeries, Member, utcnow)
    from telline.texts import t
    from telline.twilio.twiml import ConferenceSeat
    from telline.voice import incoming, meetings
    Answer = incoming.Answer

    def line_group_series(session, where, *entities):
        query = sa.select(*entities, Line, Group, MeetingSeries)
        if entities:  # the call first: calls ⋈ lines
            query = query.select_from(Call).join(Line, Line.id == Call.line_id)
        rows = session.execute(
            query.join(Group, Group.id == Line.group_id)
            .outerjoin(MeetingSeries, sa.and_(MeetingSeries.line_id == Line.id, MeetingSeries.active.is_(True)))
            .where(where).order_by(MeetingSeries.id)).all()
        return rows, [r[-1] for r in rows if r[-1] is not None]

    def receive_call(session, *, call_sid, from_raw, to_raw, status, base_url, lockout, now=None):
        if session.get_bind().dialect.name != "postgresql":
            return incoming.receive_call(session, call_sid=call_sid, from_raw=from_raw, to_raw=to_raw,
                                         status=status, base_url=base_url, lockout=lockout, now=now)
        now = now or utcnow()
        caller, called = phone.from_twilio(from_raw), phone.from_twilio(to_raw)
        rows, series_list = line_group_series(session, Line.phone_number == called) if called else ([], [])
        line, group = (rows[0][0], rows[0][1]) if rows else (None, None)
        member_id = sa.select(Member.id).where(Member.phone == caller).scalar_subquery() if caller else None
        inserted = session.execute(pg_insert(Call).values(
            twilio_sid=call_sid, direction="inbound", line_id=line.id if line else None, member_id=member_id,
            from_number=caller, to_number=called, status=(status or "ringing")[:16])
            .on_conflict_do_nothing(index_elements=[Call.twilio_sid]).returning(Call.member_id)).first()
        # a retried webhook finds its row and changes nothing
        known_member = (inserted[0] if inserted else
                        session.scalar(sa.select(Call.member_id).where(Call.twilio_sid == call_sid)))
        log.info("incoming call", extra={"call_sid": call_sid, "from": phone.mask(caller),
                                         "line_known": line is not None})
        if line is None:
            session.commit()
            return Answer("unknown_line", "en")
        if lockout.is_locked(caller, line.id):
            session.commit()
            return Answer("locked_out", group.language)
        on_now = _on_now(series_list, group, now)
        if not on_now or (known_member is not None and any(s.caller_id_joins for s, _ in on_now)):
            session.commit()  # no meeting, or caller-ID joins: telline's own path (finds the row)
            return incoming.receive_call(session, call_sid=call_sid, from_raw=from_raw, to_raw=to_raw,
                                         status=status, base_url=base_url, lockout=lockout, now=now)
        session.commit()
        return Answer("ask_code", group.language, group=group.name)

    def enter_code(session, *, call_sid, digits, base_url, lockout, now=None):
        def telline_path():
            return incoming.enter_code(session, call_sid=call_sid, digits=digits, base_url=base_url,
                                       lockout=lockout, now=now)
        if session.get_bind().dialect.name != "postgresql":
            return telline_path()
        now = now or utcnow()
        rows, series_list = line_group_series(session, Call.twilio_sid == call_sid, Call)
        if not rows:
            return telline_path()  # unknown call or line
        call, line, group = rows[0][0], rows[0][1], rows[0][2]
        if lockout.is_locked(call.from_number, line.id):
            return Answer("locked_out", group.language)
        code = "".join(ch for ch in (digits or "") if ch.isdigit())
        for series, start in _on_now(series_list, group, now):
            role = "host" if series.host_pin and code == series.host_pin else \
                "member" if code == series.access_code else None
            if role:
                return admit(session, call, series, start, role, base_url, group)
        return telline_path()  # wrong or no code, or no meeting on: counted and answered by telline

    def admit(session, call, series, start, role, base_url, group):
        present = (sa.select(sa.func.count(CP.id))
                   .where(CP.occurrence_id == MO.id, CP.joined_at.is_not(None), CP.left_at.is_(None))
                   .scalar_subquery())
        row = session.execute(sa.select(MO, present).where(MO.series_id == series.id, MO.starts_at == start)).first()
        if row is None:  # the meeting's first caller creates the occurrence: telline's path
            return incoming._admit(session, call, series, meetings.occurrence(session, series, start), role,
                                   base_url, group)
        occurrence, present = row
        if occurrence.status in ("cancelled", "ended") or (role != "host" and occurrence.locked):
            return incoming._admit(session, call, series, occurrence, role, base_url, group)
        language = group.language
        if role != "host" and present >= series.max_participants:
            return Answer("meeting_full", language)
        call.occurrence_id, call.role = occurrence.id, role
        session.commit()
        seat = ConferenceSeat(
            name=occurrence.conference_name, host=role == "host",
            end_on_exit=role == "host" and series.host_leaving_ends,
            max_participants=max(2, min(series.max_participants, 250)), beep=series.announce_entries,
            wait_url=series.wait_url, status_callback=f"{base_url}/twilio/voice/conference", record=series.record,
            label=f"{role}-{call.id}", before=(t("voice.recorded", language),) if series.record else (),
            after=t("voice.after_meeting", language))
        log.info("caller admitted", extra={"call_sid": call.twilio_sid, "occurrence_id": occurrence.id, "role": role})
        return Answer("join", language, group=group.name, seat=seat)

    _views(app, receive_call=receive_call, enter_code=enter_code)


@dataclasses.dataclass(frozen=True)
class SeriesConfig:
    """What the join path reads of a series (duck-types MeetingSeries for next_start)."""
    id: int
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
    record: bool
    wait_url: str | None


@dataclasses.dataclass(frozen=True)
class LineConfig:
    line_id: int
    group_id: int
    language: str
    group_name: str
    timezone: str
    series: tuple[SeriesConfig, ...]


CONFIG_TTL = 5.0  # seconds a worker may answer from a line's configuration before re-reading it


def _lean2(app):
    """lean + a per-process cache (CONFIG_TTL) of each line's group and active series, and narrow
    Core statements built once: /twilio/voice = INSERT … ON CONFLICT DO NOTHING RETURNING;
    /twilio/voice/code = SELECT call, SELECT occurrence + count, UPDATE — each request one transaction."""
    import time as _time

    from sqlalchemy.dialects.postgresql import insert as pg_insert

    from telline import phone
    from telline.models import (Call, ConferenceParticipant as CP, Group, Line, MeetingOccurrence as MO,
                                MeetingSeries as MS, Member, utcnow)
    from telline.texts import t
    from telline.twilio.twiml import ConferenceSeat
    from telline.voice import incoming
    Answer = incoming.Answer
    calls, lines, groups, series_t, occ, cp = (Call.__table__, Line.__table__, Group.__table__, MS.__table__,
                                               MO.__table__, CP.__table__)
    series_cols = [series_t.c[f.name] for f in dataclasses.fields(SeriesConfig)]
    config_query = (sa.select(lines.c.id, lines.c.group_id, groups.c.language, groups.c.name, groups.c.timezone,
                              *series_cols)
                    .join(groups, groups.c.id == lines.c.group_id)
                    .outerjoin(series_t, sa.and_(series_t.c.line_id == lines.c.id, series_t.c.active.is_(True)))
                    .order_by(series_t.c.id))
    by_number_q = config_query.where(lines.c.phone_number == sa.bindparam("number"))
    by_line_q = config_query.where(lines.c.id == sa.bindparam("line_id"))
    insert_call = (pg_insert(calls).values(
        twilio_sid=sa.bindparam("sid"), direction="inbound", line_id=sa.bindparam("line_id"),
        member_id=sa.select(Member.__table__.c.id).where(Member.__table__.c.phone == sa.bindparam("caller"))
        .scalar_subquery(),
        from_number=sa.bindparam("caller"), to_number=sa.bindparam("called"), status=sa.bindparam("status"),
        code_attempts=0, started_at=sa.bindparam("now", type_=MO.starts_at.type))
        .on_conflict_do_nothing(index_elements=[calls.c.twilio_sid]).returning(calls.c.member_id))
    call_query = (sa.select(calls.c.id, calls.c.line_id, calls.c.from_number)
                  .where(calls.c.twilio_sid == sa.bindparam("sid")))
    present = (sa.select(sa.func.count(cp.c.id)).where(cp.c.occurrence_id == occ.c.id, cp.c.joined_at.is_not(None),
                                                       cp.c.left_at.is_(None)).scalar_subquery())
    occurrence_query = (sa.select(occ.c.id, occ.c.status, occ.c.locked, occ.c.conference_name, present)
                        .where(occ.c.series_id == sa.bindparam("series_id"),
                               occ.c.starts_at == sa.bindparam("start", type_=MO.starts_at.type)))
    admit_call = (sa.update(calls).where(calls.c.id == sa.bindparam("call_id"))
                  .values(occurrence_id=sa.bindparam("occurrence_id"), role=sa.bindparam("role")))
    cache: dict = {}

    def config(session, key, query, params) -> LineConfig | None:
        hit = cache.get(key)
        if hit and hit[0] > _time.monotonic():
            return hit[1]
        rows = session.execute(query, params).all()
        found = None
        expires = _time.monotonic() + CONFIG_TTL
        if rows:
            first = rows[0]
            found = LineConfig(first[0], first[1], first[2], first[3], first[4],
                               tuple(SeriesConfig(*r[5:]) for r in rows if r[5] is not None))
            cache[("line", found.line_id)] = (expires, found)
        cache[key] = (expires, found)
        return found

    class _Group:  # what incoming._no_meeting and _on_now read of a Group
        def __init__(self, cfg):
            self.timezone, self.language, self.name = cfg.timezone, cfg.language, cfg.group_name

    def receive_call(session, *, call_sid, from_raw, to_raw, status, base_url, lockout, now=None):
        def telline_path():
            return incoming.receive_call(session, call_sid=call_sid, from_raw=from_raw, to_raw=to_raw,
                                         status=status, base_url=base_url, lockout=lockout, now=now)
        if session.get_bind().dialect.name != "postgresql":
            return telline_path()
        now = now or utcnow()
        caller, called = phone.from_twilio(from_raw), phone.from_twilio(to_raw)
        cfg = config(session, ("number", called), by_number_q, {"number": called}) if called else None
        if cfg is None:
            return telline_path()  # unknown line: telline records the call and answers
        inserted = session.execute(insert_call, {"sid": call_sid, "line_id": cfg.line_id, "caller": caller,
                                                 "called": called, "status": (status or "ringing")[:16],
                                                 "now": utcnow()}).first()
        known_member = inserted[0] if inserted else None
        log.info("incoming call", extra={"call_sid": call_sid, "from": phone.mask(caller), "line_known": True})
        if inserted is None:  # a retried webhook: telline's path finds the row
            session.commit()
            return telline_path()
        if lockout.is_locked(caller, cfg.line_id):
            session.commit()
            return Answer("locked_out", cfg.language)
        on_now = _on_now(cfg.series, _Group(cfg), now)
        session.commit()
        if not on_now or (known_member is not None and any(s.caller_id_joins for s, _ in on_now)):
            return telline_path()  # no meeting, or caller-ID joins: telline's path (finds the row)
        return Answer("ask_code", cfg.language, group=cfg.group_name)

    def enter_code(session, *, call_sid, digits, base_url, lockout, now=None):
        def telline_path():
            session.rollback()
            return incoming.enter_code(session, call_sid=call_sid, digits=digits, base_url=base_url,
                                       lockout=lockout, now=now)
        if session.get_bind().dialect.name != "postgresql":
            return telline_path()
        now = now or utcnow()
        call = session.execute(call_query, {"sid": call_sid}).first()
        if call is None or call.line_id is None:
            return telline_path()
        cfg = config(session, ("line", call.line_id), by_line_q, {"line_id": call.line_id})
        if cfg is None:
            return telline_path()
        if lockout.is_locked(call.from_number, cfg.line_id):
            return Answer("locked_out", cfg.language)
        code = "".join(ch for ch in (digits or "") if ch.isdigit())
        for series, start in _on_now(cfg.series, _Group(cfg), now):
            role = "host" if series.host_pin and code == series.host_pin else \
                "member" if code == series.access_code else None
            if not role:
                continue
            row = session.execute(occurrence_query, {"series_id": series.id, "start": start}).first()
            if row is None or row.status in ("cancelled", "ended") or (role != "host" and row.locked):
                return telline_path()  # first caller, or an unusual meeting: telline's own answers
            if role != "host" and row[4] >= series.max_participants:
                return Answer("meeting_full", cfg.language)
            session.execute(admit_call, {"call_id": call.id, "occurrence_id": row.id, "role": role})
            session.commit()
            language = cfg.language
            seat = ConferenceSeat(
                name=row.conference_name, host=role == "host",
                end_on_exit=role == "host" and series.host_leaving_ends,
                max_participants=max(2, min(series.max_participants, 250)), beep=series.announce_entries,
                wait_url=series.wait_url, status_callback=f"{base_url}/twilio/voice/conference",
                record=series.record, label=f"{role}-{call.id}",
                before=(t("voice.recorded", language),) if series.record else (),
                after=t("voice.after_meeting", language))
            log.info("caller admitted", extra={"call_sid": call_sid, "occurrence_id": row.id, "role": role})
            return Answer("join", language, group=cfg.group_name, seat=seat)
        return telline_path()  # wrong or no code, or no meeting on

    _views(app, receive_call=receive_call, enter_code=enter_code)


def _rrulecache(app):
    """telline.scheduling.series.next_start with the parsed rule memoised per (rrule, first start) and
    dateutil's occurrence cache on: today next_start re-parses the RRULE and walks every occurrence
    since the series' first start on each call (twice per join path). PROCESS-WIDE (patches the
    module), so use it alone in a process (gunicorn variant servers are)."""
    import functools

    from dateutil.rrule import rrulestr

    import telline.scheduling.series as series_module
    import telline.voice.meetings as meetings_module

    @functools.lru_cache(maxsize=4096)
    def rule_for(rrule: str, local_first: dt.datetime):
        return rrulestr(rrule, dtstart=local_first, cache=True)

    def next_start(series, zone, after):
        local_first = series.first_start.astimezone(zone).replace(tzinfo=None)
        found = rule_for(series.rrule, local_first).after(after.astimezone(zone).replace(tzinfo=None), inc=True)
        return found.replace(tzinfo=zone).astimezone(dt.timezone.utc) if found else None
    series_module.next_start = next_start
    meetings_module.next_start = next_start


VARIANTS = {"nopreping": _nopreping, "onetx": _onetx, "lean": _lean, "lean2": _lean2, "rrulecache": _rrulecache}


def make_app(variant: str = "", overrides: dict | None = None):
    """telline.create_app(overrides), then `variant` applied to that app only."""
    from telline import create_app as telline_create_app
    app = telline_create_app(overrides or {})
    for name in filter(None, (variant or "").split("+")):
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        VARIANTS[name](app)
    return app


def create_app():  # gunicorn: 'tests.bench._surge_variants:create_app()'
    return make_app(os.environ.get("BENCH_SURGE_VARIANT", ""))

