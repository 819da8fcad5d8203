"""A whole phone meeting, with only Twilio faked.

Callers dial in through Twilio's side (tests/twilio_sim.py: phones and the voice engine
running telline's TwiML) against the stand-in, which holds the conference and sends the
conference status callbacks — for what callers do (join, wait, hang up) and for what
telline's moderation jobs ask of its REST API (mute, end). The roster is only ever what
those callbacks said. Twilio's clock is the script's, so joins, leaves and minutes are exact.

The same script is played twice:
- in process (both databases): webhooks through the Flask test client, and the conference
  callbacks held by the stand-in until the script lets them through — so it can look at the
  moment between Twilio acting and Twilio telling;
- over HTTP (a SQLite file, as a small deployment runs): telline served by a real server in a
  thread, every webhook a real signed POST, and the stand-in POSTing its callbacks from its own
  thread as they happen, while webhooks and the worker run.
"""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from telline import create_app, db, migrate
from telline.db import EXTENSION as DB_EXTENSION
from telline.models import Line, MeetingOccurrence, utcnow
from telline.texts import t
from telline.voice.directory import directory
from telline.voice.roster import attendance, roster
from tests.conftest import make_settings
from tests.twilio_sim import HOLD_MUSIC, Clock, TwilioSim, via_http
from tests.voice.conftest import LINE, World, fresh, meeting, member, new_group

HOST = "+447911123900"  # not on the member list: enters the host PIN
NAMED = {"+447911123401": "Ana", "+447911123402": "Ben", "+447911123403": "Cleo"}  # members: caller ID
EARLY = [f"+4479111235{n:02d}" for n in range(10)]  # callers with the code, before the host
LATE = [f"+4479111236{n:02d}" for n in range(6)]  # …and after
WITHHELD = "+266696687"  # Twilio's From when the caller withholds their number
INTRUDER = "+447911123999"  # keeps guessing
ANA, BEN = "+447911123401", "+447911123402"
RAISES_HAND = EARLY[3]


def shown(number: str) -> str:
    return NAMED.get(number) or ("Caller •••" if number == WITHHELD else f"Caller •••{number[-4:]}")


def wrong_code(series) -> str:
    return next(code for code in ("111111", "222222", "333333") if code not in (series.access_code, series.host_pin))


@pytest.fixture
def over_http(tmp_path, redis_url, redis_conn, standin):
    """telline served on a real port by a threaded server, on its own SQLite file (committed for real:
    the server's threads, the worker and the script each have their connection)."""
    url = f"sqlite:///{tmp_path / 'telline.sqlite3'}"
    migrate.upgrade(url)
    apps = []
    server = make_server("127.0.0.1", 0, lambda environ, start: apps[0](environ, start), threaded=True)
    public = f"http://127.0.0.1:{server.port}"
    app = create_app(make_settings(url, redis_url, twilio_api_base_url=standin.url, public_url=public))
    apps.append(app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    http = requests.Session()
    try:
        with app.app_context():
            session = db.session()
            group = new_group(session, timezone="Europe/London")
            line = session.scalar(sa.select(Line).where(Line.group_id == group.id))
            clock = Clock(utcnow())
            twilio = TwilioSim(standin, via_http(http), line=LINE, public_url=public, clock=clock,
                               hold_callbacks=False, before_acting=session.commit)
            yield World(app, session, group, line, standin, twilio, clock)
    finally:
        standin.wait_callbacks()
        http.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
        app.extensions[DB_EXTENSION].dispose()


class Ledger:
    """What the script expects: who joined and left when (Twilio's clock), in what role."""

    def __init__(self):
        self.joined, self.left, self.roles = {}, {}, {}

    def join(self, name: str, at: dt.datetime, role: str = "member") -> None:
        self.joined[name], self.roles[name] = at, role

    def present(self) -> set[str]:
        return set(self.joined) - set(self.left)


def check(session, occurrence_id: int, ledger: Ledger, *, muted=frozenset(), hands=frozenset()) -> dict:
    """The roster and the attendance are what the ledger says, to the minute; no full number shows."""
    fresh(session)
    lines = roster(session, occurrence_id)
    by_name = {line.shown_as: line for line in lines}
    assert len(by_name) == len(lines), "two roster lines look alike"
    assert {name for name, line in by_name.items() if line.present} == ledger.present()
    assert set(by_name) == set(ledger.joined)
    for name, line in by_name.items():
        assert (line.role, line.joined_at, line.left_at) == (ledger.roles[name], ledger.joined[name],
                                                             ledger.left.get(name)), name
        assert (line.muted, line.hand_raised, line.on_hold) == (name in muted, name in hands, False), name
        assert "+" not in name and not re.search(r"\d{5,}", name), f"a full number in the roster: {name}"

    before = utcnow()
    minutes = {a.shown_as: (a.minutes, a.role) for a in attendance(session, occurrence_id)}
    after = utcnow()
    assert set(minutes) == set(ledger.joined)
    for name, joined in ledger.joined.items():
        got, role = minutes[name]
        assert role == ledger.roles[name]
        if name in ledger.left:
            assert got == round((ledger.left[name] - joined).total_seconds() / 60, 1), name
        else:  # still on the line: counted up to now
            low, high = ((moment - joined).total_seconds() / 60 for moment in (before, after))
            assert low - 0.05 <= got <= high + 0.05, (name, got, low, high)
    return by_name


def play_a_whole_meeting(world: World) -> None:
    session, group, line, standin, twilio, clock = (world.session, world.group, world.line, world.standin,
                                                     world.twilio, world.clock)
    settle = world.settle
    # --- 1. a group with a meeting on now: caller ID joins on; three members known by their number
    series = meeting(session, group, line, starts_in_minutes=-50, caller_id_joins=True)
    for number, name in NAMED.items():
        member(session, group, number, name)
    [(_, start)] = directory().by_id(session, line.id).on_now(utcnow())
    clock.set(start - dt.timedelta(minutes=3))
    code, wrong = series.access_code + "#", wrong_code(series) + "#"

    def at(minutes: int) -> dt.datetime:
        return start + dt.timedelta(minutes=minutes)

    ledger, calls = Ledger(), {}

    # Three minutes early: the known members are let in by caller ID — "#" instead of a code
    # (the pause is for a host who is a member too, to enter the host PIN)…
    for number in NAMED:
        calls[number] = twilio.phone(number).call()
        assert "Press the hash key to join, or enter the host PIN" in calls[number].said()
        calls[number].press("#")
        assert calls[number].waiting
        ledger.join(NAMED[number], at(-3))
    # …one caller gets the code wrong once…
    calls[EARLY[0]] = slow = twilio.phone(EARLY[0]).call()
    assert "Please enter your meeting code" in slow.said() and slow.state == "gathering"
    slow.press(wrong)
    assert "that code did not work" in slow.said() and slow.state == "gathering"
    slow.press(code)
    # …the others type it right, one of them with their number withheld.
    for number in EARLY[1:] + [WITHHELD]:
        calls[number] = twilio.phone(number).call()
        calls[number].press(code)
    for number in EARLY + [WITHHELD]:
        ledger.join(shown(number), at(-3))
    # Nobody can start it but a host: everyone waits, hearing hold music.
    assert all(call.waiting and call.heard[-1] == HOLD_MUSIC for call in calls.values())

    # Someone keeps guessing: after six wrong codes, one try a call — a wrong one ends the call.
    clock.set(at(-2))
    intruder = twilio.phone(INTRUDER)
    first = intruder.call()
    for _ in range(3):
        first.press(wrong)
    assert "could not find your meeting" in first.said() and first.state == "completed"
    second = intruder.call()
    second.press(wrong)
    second.press(wrong)  # five wrong codes in all
    third = intruder.call()  # a second line on the same phone, asked for the code
    assert third.state == "gathering"
    second.press(wrong)  # the sixth
    assert "each call gets one try" in second.said() and second.state == "completed"
    third.press(wrong)
    assert "each call gets one try" in third.said() and third.state == "completed" and third.conference is None
    fourth = intruder.call()
    fourth.press(wrong)
    assert "each call gets one try" in fourth.said() and fourth.state == "completed" and fourth.conference is None

    settle()
    occurrence = session.scalar(sa.select(MeetingOccurrence))
    conference = standin.conference_named(occurrence.conference_name)
    assert conference["status"] == "init" and len(standin.participants_in(conference["sid"])) == 14
    assert {e["StatusCallbackEvent"] for e in standin.conference_events()} == {"participant-join"}
    fresh(session)
    session.refresh(occurrence)
    assert (occurrence.status, occurrence.started_at, occurrence.conference_sid) == ("scheduled", None,
                                                                                     conference["sid"])
    check(session, occurrence.id, ledger)

    # The host arrives on time with the PIN: the conference starts; the music stops.
    clock.set(at(0))
    host_phone = twilio.phone(HOST)
    host = calls[HOST] = host_phone.call()
    host.press(series.host_pin + "#")
    assert host.state == "in-conference" and not host.waiting and HOLD_MUSIC not in host.heard
    assert not any(call.waiting for call in calls.values())
    ledger.join(shown(HOST), at(0), role="host")
    settle()
    fresh(session)
    session.refresh(occurrence)
    assert (occurrence.status, occurrence.started_at) == ("live", at(0))
    # Latecomers walk straight in.
    clock.set(at(1))
    for number in LATE:
        calls[number] = twilio.phone(number).call()
        calls[number].press(code)
        assert calls[number].state == "in-conference" and not calls[number].waiting
        ledger.join(shown(number), at(1))
    settle()

    # --- 2. 21 on the line: the host as host, members by name, others by the last digits only
    assert len(standin.participants_in(conference["sid"])) == 21
    lines = check(session, occurrence.id, ledger)
    assert len(ledger.present()) == 21
    assert [name for name, line in lines.items() if line.role == "host"] == ["Caller •••3900"]
    assert {"Ana", "Ben", "Cleo", "Caller •••3500", "Caller •••"} <= set(lines)

    # --- 3. Ana mutes herself by text: Twilio is asked; the roster changes when Twilio says so
    clock.set(at(10))
    ana = twilio.phone(ANA)
    ana.text("MUTE")
    world.run_jobs()
    assert standin.participant(calls[ANA].sid)["muted"] is True
    if twilio.holds_callbacks:  # Twilio has acted and not told yet
        check(session, occurrence.id, ledger)  # not guessed…
    assert twilio.deliver() == 1
    check(session, occurrence.id, ledger, muted={"Ana"})  # …told
    assert ana.texts()[-1:] == ["You are muted. Text UNMUTE to speak."]
    clock.set(at(12))
    ana.text("UNMUTE")
    settle()
    assert standin.participant(calls[ANA].sid)["muted"] is False
    check(session, occurrence.id, ledger)
    assert ana.texts()[-1:] == ["You can speak now. Text MUTE to mute yourself."]

    # --- 4. the host mutes everyone else
    clock.set(at(15))
    host_phone.text("MUTEALL")
    settle()
    muted_now = {p["call_sid"] for p in standin.participants_in(conference["sid"]) if p["muted"]}
    assert muted_now == {call.sid for number, call in calls.items() if number != HOST}
    everyone_else = ledger.present() - {shown(HOST)}
    check(session, occurrence.id, ledger, muted=everyone_else)
    assert host_phone.texts()[-1:] == ["Everyone but the hosts is being muted."]

    # --- 5. Ben leaves early; a caller raises their hand by text and the host is told
    clock.set(at(20))
    calls[BEN].hang_up()
    assert twilio.deliver() == 1
    ledger.left["Ben"] = at(20)
    check(session, occurrence.id, ledger, muted=everyone_else)
    clock.set(at(25))
    twilio.phone(RAISES_HAND).text("HAND")
    settle()
    assert host_phone.texts()[-1:] == ["Caller •••3503 raised their hand."]
    assert not any(re.search(r"\d{5,}", body) for body in host_phone.texts()), "a full number texted to the host"
    assert twilio.phone(RAISES_HAND).texts()[-1:] == [t("sms.control_hand_up", "en")]
    check(session, occurrence.id, ledger, muted=everyone_else, hands={"Caller •••3503"})

    # --- 6. the host ends it for everyone
    clock.set(at(45))
    host_phone.text("END MEETING")
    settle()
    assert host_phone.texts()[-1:] == ["Ending the meeting for everyone."]
    ended = standin.conference_named(occurrence.conference_name)
    assert (ended["status"], ended["reason_conference_ended"]) == ("completed", "conference-ended-via-api")
    assert standin.participants_in(conference["sid"]) == []
    for number, call in calls.items():  # back from the conference: a goodbye, then Twilio hangs up
        assert call.state == "completed", number
        if number != BEN:
            assert call.heard[-1] == t("voice.after_meeting", "en"), (number, call.heard)
    for name in ledger.present():
        ledger.left[name] = at(45)
    fresh(session)
    session.refresh(occurrence)
    assert (occurrence.status, occurrence.ended_at) == ("ended", at(45))
    check(session, occurrence.id, ledger, muted=everyone_else, hands={"Caller •••3503"})
    minutes = {a.shown_as: a.minutes for a in attendance(session, occurrence.id)}
    assert len(minutes) == 21
    assert minutes == {**{shown(n): 48.0 for n in [*NAMED, *EARLY, WITHHELD]}, "Ben": 23.0,
                       shown(HOST): 45.0, **{shown(n): 44.0 for n in LATE}}
    assert min(minutes, key=minutes.get) == "Ben"

    # Twilio numbered every callback in order, and telline took each one.
    events = standin.conference_events(conference["sid"])
    assert [int(e["SequenceNumber"]) for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["StatusCallbackEvent"] == "conference-end"
    assert [c["params"]["SequenceNumber"] for c in standin.callbacks_sent() if "ConferenceSid" in c["params"]] \
        == [e["SequenceNumber"] for e in events]
    assert all(c["status"] == 204 for c in standin.callbacks_sent())


def test_a_whole_meeting_in_process(in_process):
    play_a_whole_meeting(in_process)


@pytest.mark.slow
def test_a_whole_meeting_over_http(over_http):
    play_a_whole_meeting(over_http)


# --- what the script found (the fixes are described in each reason) ----------------------
def test_a_host_who_is_a_member_can_still_start_the_meeting_with_the_pin(in_process):
    world = in_process
    session, twilio = world.session, world.twilio
    series = meeting(session, world.group, world.line, caller_id_joins=True)
    member(session, world.group, ANA, "Ana")
    member(session, world.group, HOST, "Hana")  # she facilitates today
    ana = twilio.phone(ANA).call()
    hana = twilio.phone(HOST).call()
    world.settle()
    ana.press("#")
    hana.press(series.host_pin + "#")  # known by caller ID, she still gets a moment for the PIN
    world.settle()
    assert not ana.waiting
    fresh(session)
    occurrence = session.scalar(sa.select(MeetingOccurrence))
    assert occurrence.status == "live"
    assert {line.shown_as: line.role for line in roster(session, occurrence.id)} == {"Ana": "member",
                                                                                     "Hana": "host"}


def test_callers_who_look_alike_are_counted_apart(in_process):
    world = in_process
    session, twilio = world.session, world.twilio
    series = meeting(session, world.group, world.line)
    [(_, start)] = directory().by_id(session, world.line.id).on_now(utcnow())
    world.clock.set(start)
    host = twilio.phone(HOST)
    host.call().press(series.host_pin + "#")
    for number in (WITHHELD, WITHHELD, "+447911111234", "+447922221234"):
        twilio.phone(number).call().press(series.access_code + "#")
    world.settle()
    world.clock.set(start + dt.timedelta(minutes=30))
    host.text("END MEETING")
    world.settle()
    fresh(session)
    occurrence = session.scalar(sa.select(MeetingOccurrence))
    assert len(roster(session, occurrence.id)) == 5
    rows = attendance(session, occurrence.id)
    assert sorted(a.shown_as for a in rows) == ["Caller •••", "Caller •••", "Caller •••1234", "Caller •••1234",
                                               "Caller •••3900"]
    assert {a.minutes for a in rows} == {30.0}


def test_a_sqlite_writer_waits_for_another_instead_of_failing(tmp_path):
    url = f"sqlite:///{tmp_path / 'telline.sqlite3'}"
    migrate.upgrade(url)
    engine = db.make_engine(url)
    first_has_read, second_done, failures = threading.Event(), threading.Event(), []
    insert = sa.text("INSERT INTO webhook_keys (key, received_at) VALUES (:key, CURRENT_TIMESTAMP)")

    def webhook():  # reads (which meeting is this callback for?), then writes — as roster.apply does
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT count(*) FROM webhook_keys")).scalar()
                first_has_read.set()
                second_done.wait(1)  # the other request commits meanwhile (or waits for us)
                conn.execute(insert, {"key": "first"})
        except sa.exc.OperationalError as exc:
            failures.append(exc)

    def other_request():
        first_has_read.wait(5)
        with engine.begin() as conn:
            conn.execute(insert, {"key": "second"})
        second_done.set()

    threads = [threading.Thread(target=webhook), threading.Thread(target=other_request)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    engine.dispose()
    if failures:
        raise failures[0]
