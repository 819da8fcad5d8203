"""Voice tests: a group with a meeting on now, calls posted as Twilio posts them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from telline.models import Group, Line, Member, Membership, utcnow
from telline.scheduling.series import create_series
from tests.signing import post_signed
from tests.sms.conftest import (
    LINE,
    PUBLIC_URL,
    new_group,
    run_jobs,
    settings_overrides,  # noqa: F401 — a fixture: the app talks to the stand-in
)
from tests.twilio_sim import Clock, TwilioSim, via_test_client

_sids = iter(range(1, 10**6))


@pytest.fixture
def group(session):
    return new_group(session, timezone="Europe/London")


@pytest.fixture
def line(session, group):
    return session.query(Line).filter_by(group_id=group.id).one()


def meeting(session, group, line, *, starts_in_minutes=-5, **settings):
    """A daily series whose today's meeting starts `starts_in_minutes` from now."""
    now_local = utcnow().astimezone(ZoneInfo(group.timezone)).replace(tzinfo=None, second=0, microsecond=0)
    series = create_series(session, group=group, line=line, title="Daily",
                           first_start_local=now_local + dt.timedelta(minutes=starts_in_minutes),
                           rrule="FREQ=DAILY", duration_minutes=60)
    for key, value in settings.items():
        setattr(series, key, value)
    session.commit()
    return series


def member(session, group, number="+447911123456", name="Ana"):
    m = Member(display_name=name, phone=number)
    session.add(m)
    session.flush()
    session.add(Membership(member_id=m.id, group_id=group.id, status="active"))
    session.commit()
    return m


def new_call_sid():
    return f"CA{next(_sids):032d}"


_callers: dict[str, tuple[str, str]] = {}  # CallSid → (From, To): Twilio repeats both on every request


def call(client, sender="+447911123456", to=LINE, sid=None):
    sid = sid or new_call_sid()
    _callers[sid] = (sender, to)
    r = post_signed(client, "/twilio/voice", {"CallSid": sid, "AccountSid": "AC" + "1" * 32, "From": sender,
                                              "To": to, "CallStatus": "ringing", "Direction": "inbound"})
    assert r.status_code == 200 and r.content_type.startswith("text/xml"), r.data
    return sid, parse(r)


def press(client, sid, digits=None, path="/twilio/voice/code"):
    form = {"CallSid": sid, "AccountSid": "AC" + "1" * 32}
    if sid in _callers:
        form["From"], form["To"] = _callers[sid]
    if digits is not None:
        form["Digits"] = digits
    r = post_signed(client, path, form)
    assert r.status_code == 200 and r.content_type.startswith("text/xml"), r.data
    return parse(r)


def parse(response):
    root = ET.fromstring(response.get_data(as_text=True))
    assert root.tag == "Response"
    return root


def said(root) -> str:
    return " ".join((el.text or "").strip() for el in root.iter("Say"))


def conference(root):
    return root.find("./Dial/Conference")


# --- a whole phone call through Twilio's side (tests/twilio_sim.py), in process -------------------
@dataclasses.dataclass
class World:
    """telline with its database and worker, and Twilio (the stand-in and the simulator)."""
    app: Flask
    session: Session  # the script's own, for looking (and for setting up the group)
    group: Group
    line: Line
    standin: object
    twilio: TwilioSim
    clock: Clock

    def run_jobs(self) -> None:
        self.session.commit()  # the script holds no transaction while telline works
        run_jobs(self.app)

    def settle(self) -> None:
        """Workers and Twilio catch up with each other: jobs run, callbacks arrive, jobs they queued run…"""
        for _ in range(10):
            self.run_jobs()
            if not self.twilio.deliver():
                return
        raise AssertionError("telline and Twilio never settled")


def fresh(session) -> None:
    """See what others committed since (on SQLite a reader keeps its snapshot until its transaction ends)."""
    session.commit()
    session.expire_all()


@pytest.fixture
def in_process(app, client, session, group, line, standin):
    clock = Clock(utcnow())
    twilio = TwilioSim(standin, via_test_client(client), line=LINE, public_url=PUBLIC_URL, clock=clock,
                       before_acting=session.commit)
    return World(app, session, group, line, standin, twilio, clock)


