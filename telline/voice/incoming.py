"""The incoming-call flow: which line, which meeting, which code, which seat.

Domain code: takes plain values (the webhook parsed them), keeps the caller's
progress in the Call row (never in URLs), and returns an Answer that the
webhook renders with telline.twilio.twiml. Every path ends somewhere useful:
a meeting, the next meeting's time, or how to reach a person.

A call's row is written when there is something to keep: its seat, a wrong
code, the offer of a reminder. A caller asked for a meeting's code costs no
write, so the crowd at a meeting's start costs one statement each (its seat).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from telline import db, phone
from telline.groups import is_active_member
from telline.models import Call, Group, MeetingOccurrence, Member, OccurrenceStatus, Role, utcnow
from telline.scheduling.series import next_meeting
from telline.texts import t, when
from telline.twilio.twiml import ConferenceSeat
from telline.voice import meetings
from telline.voice.directory import LineInfo, Series, directory
from telline.voice.lockout import Lockout

log = logging.getLogger(__name__)
MAX_CODE_TRIES = 3

# What the caller hears next (the webhook renders each one).
AnswerKind = Literal[
    "join", "record_name", "next_meeting", "dialout_prompt",     # a meeting, their name, a question
    "ask_code", "retry_code", "no_code", "caller_id_welcome",    # digits asked for
    "unknown_line", "no_meeting_planned", "too_many_wrong_codes", "wrong_code_goodbye",
    "meeting_ended", "meeting_locked", "meeting_full", "goodbye"]  # words, then goodbye

if TYPE_CHECKING:
    # A call's columns as the join path reads them (_CALL_COLUMNS): id, twilio_sid, line_id,
    # member_id, from_number, code_attempts.
    CallRow = sa.Row[*tuple[Any, ...]]


@dataclasses.dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    language: str
    group: str = ""
    seat: ConferenceSeat | None = None
    next_when: str | None = None  # the next meeting, said in the group's language and zone
    can_remind: bool = False


def receive_call(session: Session, *, call_sid: str, from_raw: str | None, to_raw: str | None,
                 status: str | None, base_url: str, now: dt.datetime | None = None) -> Answer:
    answer = _receive_call(session, call_sid, from_raw, to_raw, status, base_url, now or utcnow())
    _commit(session)
    return answer


def _commit(session: Session) -> None:
    """One transaction per request: whatever was decided. Nothing to do when the request's only
    write went through db.autocommit_connection() (the common case at a meeting's start)."""
    if session.in_transaction():
        session.commit()


def _receive_call(session: Session, call_sid: str, from_raw: str | None, to_raw: str | None, status: str | None,
                  base_url: str, now: dt.datetime) -> Answer:
    called = phone.from_twilio(to_raw)
    line = directory().by_number(session, called)
    if log.isEnabledFor(logging.INFO):  # masking parses the number: not for a line nobody reads
        log.info("incoming call", extra={"call_sid": call_sid, "from": phone.mask(phone.from_twilio(from_raw)),
                                         "line_known": line is not None})
    on_now = line.on_now(now) if line is not None else []
    if line is not None and on_now and not any(series.caller_id_joins for series, _ in on_now):
        # A meeting is on and only its code lets one in: ask for it, nothing to keep yet (not even
        # the caller's number parsed).
        return Answer("ask_code", line.language, group=line.group_name)
    caller = phone.from_twilio(from_raw)
    call = _call_row(session, call_sid, caller, line, called, status)
    if line is None:
        return Answer("unknown_line", "en")
    if not on_now:
        return _no_meeting(session, line, caller, now)
    known = _caller_id_series(session, call, line, on_now)
    if known is not None:
        series, start = known
        if series.host_pin:  # a facilitator is often a member too: give her a moment for the PIN
            return Answer("caller_id_welcome", line.language, group=line.group_name)
        return _admit(session, call, series, start, "member", base_url, line)
    return Answer("ask_code", line.language, group=line.group_name)


def _caller_id_series(session: Session, call: CallRow, line: LineInfo,
                      on_now: list[tuple[Series, dt.datetime]]) -> tuple[Series, dt.datetime] | None:
    """The meeting a known member may join by caller ID alone (off by default: it can be spoofed)."""
    allowing = [(series, start) for series, start in on_now if series.caller_id_joins]
    if not allowing or not is_active_member(session, call.member_id, line.group_id):
        return None
    return allowing[0]


def enter_code(session: Session, *, call_sid: str, digits: str | None, base_url: str, lockout: Lockout,
               from_raw: str | None = None, to_raw: str | None = None, status: str | None = None,
               now: dt.datetime | None = None) -> Answer:
    """The caller pressed digits (or nothing: Digits absent means the prompt timed out).
    from_raw/to_raw/status: the webhook's From, To and CallStatus (Twilio repeats them), for a
    call whose row is not written yet."""
    now = now or utcnow()
    caller, called = phone.from_twilio(from_raw), phone.from_twilio(to_raw)
    answer = (_quick_admit(session, call_sid, digits, caller, called, status, base_url, now)
              or _enter_code(session, call_sid, digits, caller, called, status, base_url, lockout, now))
    _commit(session)
    return answer


def _quick_admit(session: Session, call_sid: str, digits: str | None, caller: str | None, called: str | None,
                 status: str | None, base_url: str, now: dt.datetime) -> Answer | None:
    """The right code for a meeting that is simply on: the call's row written with its seat in one
    statement (PostgreSQL), the common case when a meeting starts and everyone calls at once.
    None for anything else (wrong code, first caller, a meeting the admission rule refuses or a host
    restarts, a call already seated elsewhere, SQLite…), which _enter_code() then answers, reading
    afresh."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    line = directory().by_number(session, called)
    code = "".join(ch for ch in (digits or "") if ch.isdigit())
    if line is None or not code:
        return None
    for series, start in line.on_now(now):
        role = _role_for(series, code)
        if role is None:
            continue
        with db.autocommit_connection(session) as connection:
            seated = connection.execute(_TAKE_SEAT, dict(
                sid=call_sid, line=line.line_id, caller=caller, called=called,
                status=_status(status), now=now, series_id=series.id, start=start, as_role=role,
                host=role == "host", max=series.max_participants)).first()
        if seated is None:
            return None
        call_id, occurrence_id, conference_name = seated
        return _seat_answer(series, role, line, base_url, call_id, call_sid, occurrence_id, conference_name)
    return None


def _role_for(series: Series, code: str) -> Role | None:
    """host for the series' host PIN, member for its access code, None for anything else."""
    if series.host_pin and code == series.host_pin:
        return "host"
    return "member" if code == series.access_code else None


def _enter_code(session: Session, call_sid: str, digits: str | None, caller: str | None, called: str | None,
                status: str | None, base_url: str, lockout: Lockout, now: dt.datetime) -> Answer:
    call = session.connection().execute(_CALL_BY_SID, {"sid": call_sid}).first()
    if call is None:  # its first webhook only asked for the code: the row is written now
        line = directory().by_number(session, called)
        call = _call_row(session, call_sid, caller, line, called, status) if line is not None else None
    line = directory().by_id(session, call.line_id) if call else None
    if call is None or line is None:
        return Answer("unknown_line", "en")  # a code for a call we never answered: start again
    code = "".join(ch for ch in (digits or "") if ch.isdigit())
    on_now = line.on_now(now)
    for series, start in on_now:
        role = _role_for(series, code)
        if role:
            return _admit(session, call, series, start, role, base_url, line)
    if not on_now:  # the meeting ended while they typed
        return _no_meeting(session, line, call.from_number, now)
    if not code and call.code_attempts == 0:
        known = _caller_id_series(session, call, line, on_now)
        if known is not None:  # "press # to join": a caller-ID member who did not enter the host PIN
            series, start = known
            return _admit(session, call, series, start, "member", base_url, line)
    attempts = call.code_attempts + 1
    session.connection().execute(sa.update(Call).where(Call.id == call.id).values(code_attempts=attempts))
    if code:
        started = lockout.failed(session, call.from_number, line.line_id, now)
        slowed = started or lockout.one_try_per_call(session, call.from_number, line.line_id, now)
        log.warning("wrong meeting code", extra={"call_sid": call_sid, "from": phone.mask(call.from_number),
                                                 "attempt": attempts, "one_try_per_call": slowed})
        if slowed:  # too many wrong codes from this number, or on this line: this call's try is spent
            return Answer("too_many_wrong_codes", line.language)
    if attempts >= MAX_CODE_TRIES:
        return Answer("wrong_code_goodbye", line.language)
    return Answer("retry_code" if code else "no_code", line.language, group=line.group_name)


def name_recorded(session: Session, *, call_sid: str, recording_url: str | None, base_url: str) -> Answer:
    """Back from <Record>: keep the recording (if it is Twilio's) and let the caller in."""
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid))
    if call is None or call.occurrence_id is None:
        return Answer("unknown_line", "en")
    url = (recording_url or "").strip()
    if url.startswith("https://api.twilio.com/") and len(url) <= 500:  # never replay a URL we did not get from Twilio
        call.name_recording_url = url
    answer = _admit_again(session, call, call.occurrence_id, call.role or "member", base_url, ask_name=False)
    session.commit()
    return answer


def _admit_again(session: Session, call: Call, occurrence_id: int, role: Role, base_url: str,
                 ask_name: bool = True) -> Answer:
    """_admit() for a call that already knows its meeting (back from recording a name, a dial-out)."""
    occurrence = session.get_one(MeetingOccurrence, occurrence_id)
    series = occurrence.series
    line = directory().by_id(session, series.line_id)
    if line is None:  # as for a code on a call we never answered: start again
        return Answer("unknown_line", "en")
    return _admit(session, call, Series.of(series), occurrence.starts_at, role, base_url, line, ask_name)


def _admit(session: Session, call: Call | CallRow, series: Series, start: dt.datetime, role: Role, base_url: str,
           line: LineInfo, ask_name: bool = True) -> Answer:
    """Let the caller into the meeting (series, start) unless the admission rule (meetings.refusal)
    refuses them; a host calling into a meeting that was ended restarts it. `call`: anything with
    id, twilio_sid and from_number (a row, or a Call)."""
    language = line.language
    params = {"series_id": series.id, "start": start, "host": role == "host", "max": series.max_participants}
    occurrence = session.connection().execute(_OCCURRENCE, params).first()
    if occurrence is None:  # the meeting's first caller: its row and conference name are made now
        row = meetings.occurrence(session, series, start)
        if row.starts_at != start:  # moved away a moment ago (this process read the line before): not here
            return _no_meeting(session, line, call.from_number, utcnow())
        occurrence = session.connection().execute(_OCCURRENCE, params).one()
    if occurrence.refusal == "cancelled":
        return _no_meeting(session, line, call.from_number, utcnow(), after=occurrence.ends_at)
    if occurrence.refusal is not None:
        return Answer(_REFUSED[occurrence.refusal], language)
    if occurrence.status == OccurrenceStatus.ENDED and meetings.reopen(session, occurrence.id):
        log.info("meeting restarted by its host", extra={"call_sid": call.twilio_sid,
                                                         "occurrence_id": occurrence.id})
    session.connection().execute(sa.update(Call).where(Call.id == call.id)
                                 .values(occurrence_id=occurrence.id, role=role))
    return _seat_answer(series, role, line, base_url, call.id, call.twilio_sid, occurrence.id,
                        occurrence.conference_name, ask_name)


def _seat_answer(series: Series, role: Role, line: LineInfo, base_url: str, call_id: int, call_sid: str,
                 occurrence_id: int, conference_name: str, ask_name: bool = True) -> Answer:
    """What an admitted caller hears: the conference, or first the question of their name."""
    language = line.language
    if ask_name and series.record_names and role == "member":
        return Answer("record_name", language)  # then back through name_recorded()
    seat = ConferenceSeat(
        name=conference_name, host=role == "host",
        end_on_exit=role == "host" and series.host_leaving_ends,
        max_participants=max(2, min(series.max_participants, 250)), beep=series.announce_entries,
        wait_url=series.wait_url, status_callback=f"{base_url}/twilio/voice/conference", record=series.record,
        label=f"{role}-{call_id}",  # ids only: labels show in Twilio's console
        before=(t("voice.recorded", language),) if series.record else (),
        after=t("voice.after_meeting", language))
    log.info("caller admitted", extra={"call_sid": call_sid, "occurrence_id": occurrence_id, "role": role})
    return Answer("join", language, group=line.group_name, seat=seat)


def _no_meeting(session: Session, line: LineInfo, caller: str | None, now: dt.datetime,
                after: dt.datetime | None = None) -> Answer:
    found = next_meeting(session, session.get_one(Group, line.group_id), after or now)
    if found is None:
        return Answer("no_meeting_planned", line.language, group=line.group_name)
    _, start = found
    return Answer("next_meeting", line.language, group=line.group_name,
                  next_when=when(start, line.timezone, line.language), can_remind=caller is not None)


# What a caller refused by the admission rule (meetings.refusal) hears; "cancelled" hears the next one.
_REFUSED: dict[meetings.Refusal, AnswerKind] = {"ended": "meeting_ended", "locked": "meeting_locked",
                                                 "full": "meeting_full"}

# The join path's statements, built once: a meeting's start brings every caller at once.
_CALL_COLUMNS = (Call.id, Call.twilio_sid, Call.line_id, Call.member_id, Call.from_number, Call.code_attempts)
_CALL_BY_SID = sa.select(*_CALL_COLUMNS).where(Call.twilio_sid == sa.bindparam("sid"))
_REFUSAL = meetings.refusal(sa.bindparam("host", type_=sa.Boolean), sa.bindparam("max", type_=sa.Integer))
_THIS_MEETING = (MeetingOccurrence.series_id == sa.bindparam("series_id"),
                 MeetingOccurrence.starts_at == sa.bindparam("start", type_=MeetingOccurrence.starts_at.type))
_OCCURRENCE = (sa.select(MeetingOccurrence.id, MeetingOccurrence.status, MeetingOccurrence.conference_name,
                         MeetingOccurrence.ends_at, _REFUSAL.label("refusal"))
               .where(*_THIS_MEETING))


# PostgreSQL: the call's row is written (or found) with its seat if the admission rule lets the
# caller in, in one statement where _enter_code() and _admit() take several. A host restarting
# a meeting that was ended is left to _admit(), which reopens it.
_NOW = sa.bindparam("now", type_=Call.started_at.type)
_OPEN_SEAT = (sa.select(MeetingOccurrence.id, MeetingOccurrence.conference_name)
              .where(*_THIS_MEETING, _REFUSAL.is_(None), MeetingOccurrence.status != OccurrenceStatus.ENDED)
              .cte("open_seat"))
_MEMBER_BY_NUMBER = sa.select(Member.id).where(Member.phone == sa.bindparam("caller")).scalar_subquery()
_seat_insert = postgresql.insert(Call).from_select(
    ["twilio_sid", "direction", "line_id", "member_id", "from_number", "to_number", "status", "code_attempts",
     "started_at", "occurrence_id", "role"],
    sa.select(sa.bindparam("sid", type_=Call.twilio_sid.type), sa.literal("inbound"),
              sa.bindparam("line", type_=sa.Integer), _MEMBER_BY_NUMBER,
              sa.bindparam("caller", type_=Call.from_number.type), sa.bindparam("called", type_=Call.to_number.type),
              sa.bindparam("status", type_=Call.status.type), sa.literal(0), _NOW, _OPEN_SEAT.c.id,
              sa.bindparam("as_role", type_=Call.role.type)))
_TAKEN = (_seat_insert.on_conflict_do_update(
    index_elements=[Call.twilio_sid],
    set_={"occurrence_id": _seat_insert.excluded.occurrence_id, "role": _seat_insert.excluded.role},
    # a call takes one seat on its own line: not yet seated, or seated here already (a retried webhook)
    where=sa.and_(Call.line_id == _seat_insert.excluded.line_id,
                  sa.or_(Call.occurrence_id.is_(None), Call.occurrence_id == _seat_insert.excluded.occurrence_id)))
    .returning(Call.id, Call.occurrence_id).cte("taken"))
_TAKE_SEAT = sa.select(_TAKEN.c.id, _OPEN_SEAT.c.id, _OPEN_SEAT.c.conference_name).join_from(
    _TAKEN, _OPEN_SEAT, _TAKEN.c.occurrence_id == _OPEN_SEAT.c.id)


def _status(status: str | None) -> str:
    return (status or "ringing").strip()[:16] or "ringing"


def _call_row(session: Session, call_sid: str, caller: str | None, line: LineInfo | None, called: str | None,
              status: str | None) -> CallRow:
    """This call's row, written by the first webhook that has something to keep (see the module's
    docstring): a retried webhook finds it and changes nothing."""
    with db.autocommit_connection(session) as connection:
        row = connection.execute(_insert_call(session.get_bind().dialect.name), dict(
            sid=call_sid, line_id=line.line_id if line else None, caller=caller, called=called,
            status=_status(status), now=utcnow())).first()
    # Not written now: a row for this SID was there already (a retried webhook), committed.
    return row or session.connection().execute(_CALL_BY_SID, {"sid": call_sid}).one()


@functools.cache
def _insert_call(dialect: str) -> sa.Executable:
    insert = db.insert_for(dialect)
    return (insert(Call).values(
        twilio_sid=sa.bindparam("sid"), direction="inbound", line_id=sa.bindparam("line_id"),
        member_id=_MEMBER_BY_NUMBER,
        from_number=sa.bindparam("caller", type_=Call.from_number.type),
        to_number=sa.bindparam("called", type_=Call.to_number.type), status=sa.bindparam("status"),
        code_attempts=0, started_at=sa.bindparam("now", type_=Call.started_at.type))
        .on_conflict_do_nothing(index_elements=[Call.twilio_sid]).returning(*_CALL_COLUMNS))


def dialled_answered(session: Session, *, call_sid: str) -> Answer:
    """A member we dialled picked up: ask for a 1 first (a voicemail never presses it)."""
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid, Call.direction == "outbound"))
    if call is None or call.occurrence_id is None:
        return Answer("unknown_line", "en")
    group = _group_of(session, call.occurrence_id)
    return Answer("dialout_prompt", group.language, group=group.name)


def dialled_pressed(session: Session, *, call_sid: str, digits: str | None, base_url: str) -> Answer:
    call = session.scalar(sa.select(Call).where(Call.twilio_sid == call_sid, Call.direction == "outbound"))
    if call is None or call.occurrence_id is None:
        return Answer("unknown_line", "en")
    group = _group_of(session, call.occurrence_id)
    if (digits or "").strip() != "1":
        return Answer("goodbye", group.language)
    answer = _admit_again(session, call, call.occurrence_id, "member", base_url)
    session.commit()
    return answer


def _group_of(session: Session, occurrence_id: int) -> Group:
    return session.get_one(MeetingOccurrence, occurrence_id).series.group
