"""A meeting that is still on never shuts a caller out.

Twilio ends a conference when its last caller leaves — whether or not a host ever came — and when a
host with "host leaving ends" leaves. That ends the conference, not the meeting: the next caller
starts a new conference under the same name, and roster and attendance carry on across them. Only
an explicit end (END MEETING, the moderation "end") closes a meeting, or its slot running out; even
then its host may restart it within the slot.

Played through Twilio's side (tests/twilio_sim.py) against the stand-in, which ends conferences as
Twilio does and sends the callbacks (with ReasonConferenceEnded).
"""

from __future__ import annotations

import datetime as dt
import types

import sqlalchemy as sa

from telline.models import Conference, MeetingOccurrence, utcnow
from telline.texts import t
from telline.voice.directory import directory
from telline.voice.roster import attendance, roster
from tests.voice.conftest import call, fresh, meeting, member, press
from tests.voice.test_roster_and_moderation import event

HOST, ANA, BEN = "+447911123900", "+447911123401", "+447911123402"
EARLY = "+447911123500"
ENDED = t("voice.meeting_ended", "en")


def start_of(world) -> dt.datetime:
    [(_, start)] = directory().by_id(world.session, world.line.id).on_now(utcnow())
    return start


def conference_of(occ: MeetingOccurrence, sid: str):
    """What a callback of conference `sid` of this meeting carries (for tests.…event)."""
    return types.SimpleNamespace(conference_sid=sid, conference_name=occ.conference_name)


def occurrence(world) -> MeetingOccurrence:
    fresh(world.session)
    return world.session.scalar(sa.select(MeetingOccurrence))


def test_an_early_caller_who_hangs_up_does_not_end_the_meeting(in_process):
    world = in_process
    series = meeting(world.session, world.group, world.line, starts_in_minutes=5)
    member(world.session, world.group, ANA, "Ana")
    start = start_of(world)
    world.clock.set(start - dt.timedelta(minutes=4))
    early = world.twilio.phone(EARLY).call()
    early.press(series.access_code + "#")
    assert early.waiting  # hold music: no host yet
    world.clock.set(start - dt.timedelta(minutes=2))
    early.hang_up()  # Twilio ends the empty conference…
    world.settle()
    first = world.standin.conference_named(occurrence(world).conference_name)
    assert (first["status"], first["reason_conference_ended"]) == ("completed", "last-participant-left")
    occ = occurrence(world)
    assert (occ.status, occ.conference_sid, occ.ended_at) == ("scheduled", None, None)  # …not the meeting

    world.clock.set(start)
    host = world.twilio.phone(HOST).call()
    host.press(series.host_pin + "#")
    assert host.state == "in-conference" and ENDED not in host.said()
    ana = world.twilio.phone(ANA).call()
    ana.press(series.access_code + "#")
    assert ana.state == "in-conference" and not ana.waiting
    world.settle()
    second = world.standin.conference_named(occ.conference_name)
    assert second["sid"] != first["sid"] and second["status"] == "in-progress"
    occ = occurrence(world)
    assert (occ.status, occ.conference_sid) == ("live", second["sid"])
    # One meeting, two conferences: the roster and the attendance hold both.
    conferences = world.session.scalars(sa.select(Conference).order_by(Conference.ended_at.is_(None))).all()
    assert [(c.sid, c.end_reason) for c in conferences] == [(first["sid"], "last-participant-left"),
                                                            (second["sid"], None)]
    present = {line.shown_as for line in roster(world.session, occ.id) if line.present}
    assert present == {"Caller •••3900", "Ana"}
    world.clock.set(start + dt.timedelta(minutes=10))
    ana.hang_up()
    host.hang_up()
    world.settle()
    minutes = {a.shown_as: a.minutes for a in attendance(world.session, occ.id)}
    assert minutes == {"Caller •••3500": 2.0, "Caller •••3900": 10.0, "Ana": 10.0}  # the early caller too


def test_a_host_whose_call_drops_restarts_the_meeting_and_members_follow(in_process):
    world = in_process
    series = meeting(world.session, world.group, world.line, starts_in_minutes=-5)  # host leaving ends: on
    assert series.host_leaving_ends
    member(world.session, world.group, ANA, "Ana")
    start = start_of(world)
    world.clock.set(start + dt.timedelta(minutes=1))
    host = world.twilio.phone(HOST).call()
    host.press(series.host_pin + "#")
    ana = world.twilio.phone(ANA).call()
    ana.press(series.access_code + "#")
    world.settle()
    world.clock.set(start + dt.timedelta(minutes=6))
    host.hang_up()  # the host's call drops: Twilio ends the conference for everyone
    world.settle()
    assert ana.state == "completed"
    ended = world.standin.conference_named(occurrence(world).conference_name)
    assert ended["reason_conference_ended"] == "participant-with-end-conference-on-exit-left"
    assert occurrence(world).status == "scheduled"

    world.clock.set(start + dt.timedelta(minutes=7))
    again = world.twilio.phone(HOST).call()  # she calls back within the slot
    again.press(series.host_pin + "#")
    assert again.state == "in-conference" and ENDED not in again.said()
    ana_again = world.twilio.phone(ANA).call()
    ana_again.press(series.access_code + "#")
    assert ana_again.state == "in-conference" and ENDED not in ana_again.said()
    world.settle()
    assert occurrence(world).status == "live"
    world.clock.set(start + dt.timedelta(minutes=17))
    ana_again.hang_up()
    again.hang_up()
    world.settle()
    minutes = {a.shown_as: a.minutes for a in attendance(world.session, occurrence(world).id)}
    assert minutes == {"Caller •••3900": 15.0, "Ana": 15.0}  # 5 + 10 minutes each, across both conferences


def test_end_meeting_closes_it_for_members_and_its_host_may_restart_it(in_process):
    world = in_process
    series = meeting(world.session, world.group, world.line, starts_in_minutes=-5, host_leaving_ends=False)
    member(world.session, world.group, ANA, "Ana")
    member(world.session, world.group, BEN, "Ben")
    start = start_of(world)
    world.clock.set(start + dt.timedelta(minutes=1))
    host_phone = world.twilio.phone(HOST)
    host = host_phone.call()
    host.press(series.host_pin + "#")
    ana = world.twilio.phone(ANA).call()
    ana.press(series.access_code + "#")
    world.settle()
    world.clock.set(start + dt.timedelta(minutes=20))
    host_phone.text("END MEETING")
    world.settle()
    assert host.state == ana.state == "completed"
    occ = occurrence(world)
    assert (occ.status, occ.ended_at, occ.conference_sid) == ("ended", start + dt.timedelta(minutes=20), None)

    ben = world.twilio.phone(BEN).call()  # a member, later in the slot: the meeting has ended
    ben.press(series.access_code + "#")
    assert ENDED in ben.said() and ben.state == "completed"
    back = host_phone.call()  # the host changes her mind: she can start it again
    back.press(series.host_pin + "#")
    assert back.state == "in-conference"
    assert (occurrence(world).status, occurrence(world).ended_at) == ("scheduled", None)
    ben = world.twilio.phone(BEN).call()
    ben.press(series.access_code + "#")
    assert ben.state == "in-conference"
    world.settle()
    assert occurrence(world).status == "live"


def test_a_conference_ending_after_the_slot_ends_the_meeting(client, session, group, line):
    series = meeting(session, group, line, starts_in_minutes=-5)
    sid, _ = call(client, sender=HOST)
    press(client, sid, series.host_pin)
    occ = session.scalar(sa.select(MeetingOccurrence))
    conference = conference_of(occ, "CF" + "a" * 32)
    after_the_slot = (occ.ends_at + dt.timedelta(minutes=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    event(client, conference, "conference-start", Timestamp=after_the_slot)
    event(client, conference, "conference-end", Timestamp=after_the_slot, ReasonConferenceEnded="last-participant-left")
    session.refresh(occ)
    assert (occ.status, occ.conference_sid) == ("ended", None)


def test_callbacks_of_an_older_conference_arriving_late_change_nothing(client, session, group, line):
    series = meeting(session, group, line, starts_in_minutes=-5)
    sid, _ = call(client, sender=HOST)
    press(client, sid, series.host_pin)
    occ = session.scalar(sa.select(MeetingOccurrence))
    old, new = conference_of(occ, "CF" + "1" * 32), conference_of(occ, "CF" + "2" * 32)
    event(client, old, "conference-start")
    event(client, old, "conference-end", ReasonConferenceEnded="participant-with-end-conference-on-exit-left")
    session.refresh(occ)
    assert (occ.status, occ.conference_sid) == ("scheduled", None)
    event(client, new, "conference-start")
    session.refresh(occ)
    assert (occ.status, occ.conference_sid) == ("live", new.conference_sid)
    event(client, old, "conference-start")  # the old one's start, delivered late: it is over
    event(client, old, "conference-end")  # …and its end, a second time
    session.refresh(occ)
    assert (occ.status, occ.conference_sid) == ("live", new.conference_sid)
