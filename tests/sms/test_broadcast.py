"""Broadcasts reach every opted-in member once, and nobody else."""

import re

import pytest
import sqlalchemy as sa

from telline.models import Broadcast, Message, Task
from telline.sms import broadcast as broadcast_module
from telline.sms import consent
from telline.sms.broadcast import BATCH_MAX, batch_size, fan_out, start_broadcast
from telline.sms.outbound import InvalidText
from tests.sms.conftest import add_member, run_jobs


def members(session, group, n, start=100000):
    return [add_member(session, group, f"+4479111{start + i:05d}") for i in range(n)]


def test_every_opted_in_member_gets_it_once(app, session, group, line, standin, monkeypatch):
    monkeypatch.setattr(broadcast_module, "BATCH_MAX", 20)
    everyone = members(session, group, 2 * batch_size(line.sms_rate, line.sms_rate_unit, 1) + 7)  # three jobs
    stopped = everyone[3]
    consent.record(session, stopped.phone, consent.OPT_OUT, "keyword")
    never_asked = add_member(session, group, "+447911999001", opted_in=False)
    landline = everyone[5]
    landline.sms_status = "landline"
    session.commit()
    broadcast = start_broadcast(session, group_id=group.id, body="No meeting on the 24th. Take care.")
    session.commit()
    run_jobs(app)
    sent_to = sorted(m["to"] for m in standin.messages_sent())
    expected = sorted(m.phone for m in everyone if m not in (stopped, landline))
    assert sent_to == expected
    assert never_asked.phone not in sent_to
    session.refresh(broadcast)
    assert broadcast.recipients == len(expected)


@pytest.mark.parametrize("rate,unit,body,size,timeout", [
    (1, "segments", "short", 3, 186),             # a long code: three seconds' worth a job
    (3, "segments", "é" * 100, 9, 198),           # GSM-7, one segment: 3 texts/s
    (3, "segments", "ê" * 100, 4, 188),           # UCS-2, two segments: 1.5 texts/s
    (100, "messages", "ê" * 100, BATCH_MAX, 180 + 2 * BATCH_MAX),  # a short code: capped
], ids=["long-code", "gsm7-3-per-s", "ucs2-3-per-s", "short-code"])
def test_a_broadcast_is_cut_into_jobs_the_lines_rate_can_send_in_time(app, session, group, line, rate, unit,
                                                                      body, size, timeout):
    line.sms_rate, line.sms_rate_unit = rate, unit
    session.commit()
    members(session, group, size + 1)
    start_broadcast(session, group_id=group.id, body=body)
    session.commit()
    from telline.job_queues import queues
    from telline.worker import make_worker
    make_worker(app, simple=True).work(burst=True, max_jobs=1)  # only the fan-out job
    session.expire_all()
    batches = session.scalars(sa.select(Task).order_by(Task.id)).all()  # the fan-out's own task is done
    assert [(t.func, len(t.args[0]), t.timeout) for t in batches] == [
        ("telline.sms.batch:deliver_batch", size, timeout), ("telline.sms.batch:deliver_batch", 1, timeout)]
    assert [job.timeout for job in queues()["bulk"].get_jobs()] == [timeout, timeout]  # what RQ enforces


def test_a_broadcast_whose_groups_line_was_removed_is_dropped_not_failed_over_and_over(app, session, group, line,
                                                                                         standin):
    members(session, group, 2)
    broadcast = start_broadcast(session, group_id=group.id, body="hello all")
    session.delete(line)
    session.commit()
    run_jobs(app)
    assert standin.messages_sent() == []
    assert session.scalar(sa.select(sa.func.count(Message.id)).where(Message.broadcast_id == broadcast.id)) == 0
    assert session.scalar(sa.select(sa.func.count(Task.id))) == 0  # done, not left for the sweeper


def test_fanning_out_again_sends_nothing_twice(app, session, group, standin):
    members(session, group, 5)
    broadcast = start_broadcast(session, group_id=group.id, body="hello all")
    session.commit()
    run_jobs(app)
    fan_out(broadcast.id)
    run_jobs(app)
    assert len(standin.messages_sent()) == 5
    assert session.scalar(sa.select(sa.func.count(Message.id)).where(Message.broadcast_id == broadcast.id)) == 5


def test_a_member_who_stops_after_the_fan_out_is_not_texted(app, session, group, standin):
    ana, bob = members(session, group, 2)
    start_broadcast(session, group_id=group.id, body="hello all")
    session.commit()
    from telline.job_queues import queues
    from telline.worker import make_worker
    make_worker(app, simple=True).work(burst=True, max_jobs=1)  # only the fan-out job
    assert queues()["bulk"].count == 1
    consent.record(session, bob.phone, consent.OPT_OUT, "keyword")
    session.commit()
    run_jobs(app)
    assert [m["to"] for m in standin.messages_sent()] == [ana.phone]


def test_the_same_key_starts_one_broadcast(app, session, group):
    first = start_broadcast(session, group_id=group.id, body="x", idempotency_key="dec-24")
    again = start_broadcast(session, group_id=group.id, body="x", idempotency_key="dec-24")
    assert first.id == again.id


@pytest.mark.parametrize("body,group_id,fragment", [("", None, "1 to 1600"), ("x" * 1601, None, "1 to 1600"),
                                                    ("hi", 999, "no group 999")])
def test_bad_broadcasts_are_refused(session, group, body, group_id, fragment):
    with pytest.raises(InvalidText, match=fragment):
        start_broadcast(session, group_id=group_id or group.id, body=body)
    assert session.scalars(sa.select(Broadcast)).all() == []


def test_cli_broadcast(app, session, group, standin, runner):
    members(session, group, 2)
    from telline.cli import cli
    result = runner.invoke(cli, ["sms", "broadcast", str(group.id), "Meeting moved to 8pm"])
    assert result.exit_code == 0 and re.fullmatch(r"broadcast \d+ queued\n", result.output)
    run_jobs(app)
    assert len(standin.messages_sent()) == 2
    assert runner.invoke(cli, ["sms", "broadcast", str(group.id), ""]).exit_code == 2
