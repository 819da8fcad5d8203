"""SMS tests: the app talks to the Twilio stand-in; jobs run in a real RQ worker on real Redis."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from rq.registry import ScheduledJobRegistry

from telline.job_queues import queues
from telline.models import Group, Line, Member, Membership, Message
from telline.sms import consent
from telline.worker import make_worker

LINE = "+15005550006"
PUBLIC_URL = "http://telline.test"


@pytest.fixture
def settings_overrides(standin):
    return {"twilio_api_base_url": standin.url, "public_url": PUBLIC_URL}


def run_jobs(app, *, scheduled: bool = False, rounds: int = 10) -> None:
    """Drain the queues with a real worker. scheduled=True also runs jobs that RQ's scheduler
    holds for later (retries with backoff, quiet-hour deferrals) as if their time had come."""
    for _ in range(rounds):
        if scheduled:
            for q in queues().in_order():
                registry = ScheduledJobRegistry(queue=q)
                for job_id in registry.get_job_ids():
                    registry.remove(job_id)
                    q.enqueue_job(q.fetch_job(job_id))
        make_worker(app, simple=True).work(burst=True, with_scheduler=False)
        if not any(q.count for q in queues().in_order()) and not (
                scheduled and any(ScheduledJobRegistry(queue=q).count for q in queues().in_order())):
            return


def scheduled_count() -> int:
    return sum(ScheduledJobRegistry(queue=q).count for q in queues().in_order())


def new_group(session, *, timezone: str = "UTC", **fields) -> Group:
    """The group "Carers" with its line (LINE, 100 texts/s), no quiet hours unless a test sets
    them, committed. `fields`: any other Group column."""
    g = Group(name="Carers", language="en", timezone=timezone, quiet_start=dt.time(0, 0), quiet_end=dt.time(0, 0),
              **fields)
    session.add(g)
    session.flush()
    session.add(Line(group_id=g.id, phone_number=LINE, sms_rate=100))
    session.commit()
    return g


@pytest.fixture
def group(session):
    return new_group(session, text_code="CARE42", crisis_resource="call 116 123",
                     coordinator_contact="Sam 07700 900123")


@pytest.fixture
def line(session, group):
    return session.scalar(sa.select(Line).where(Line.group_id == group.id))


def add_member(session, group, number="+447911123456", *, opted_in=True, language=None, tz=None):
    member = Member(display_name="", phone=number, language=language, timezone=tz)
    session.add(member)
    session.flush()
    session.add(Membership(member_id=member.id, group_id=group.id, status="active"))
    if opted_in:
        consent.record(session, number, consent.OPT_IN, "import")
    session.commit()
    return member


def outbound(session):
    return session.scalars(sa.select(Message).where(Message.direction == "outbound").order_by(Message.id)).all()


def texts_to(standin, number):
    return [m["body"] for m in standin.messages_sent() if m["to"] == number]
