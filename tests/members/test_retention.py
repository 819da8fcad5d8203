import datetime as dt

import pytest
import sqlalchemy as sa

from telline import db
from telline.cli import cli
from telline.job_queues import queues
from telline.members import retention
from telline.models import Line, Message, utcnow
from telline.worker import PERIODIC, make_worker

NOW = dt.datetime(2026, 12, 3, 3, 41, tzinfo=dt.UTC)


def text(session, line, days_old, body="hello", status="delivered"):
    message = Message(direction="outbound", line_id=line.id if line else None, body=body, status=status,
                      created_at=NOW - dt.timedelta(days=days_old))
    session.add(message)
    session.flush()
    return message


@pytest.fixture
def lines(session, group, other_group):
    uk, fr = Line(group_id=group.id, phone_number="+442079460000"), Line(group_id=other_group.id,
                                                                         phone_number="+33144556677")
    session.add_all([uk, fr])
    other_group.message_retention_days = 30
    session.flush()
    return uk, fr


def bodies(session):
    return [(m.body, m.status) for m in session.scalars(sa.select(Message).order_by(Message.id))]


def test_bodies_past_each_groups_retention_are_blanked_never_a_text_still_to_send(session, group, lines):
    uk, fr = lines
    assert group.message_retention_days == 180  # the default
    text(session, uk, 181, "old UK")
    text(session, uk, 179, "recent UK")
    text(session, fr, 31, "vieux")
    text(session, fr, 29, "récent")
    for status in ("pending", "deferred", "retrying", "submitting"):
        text(session, fr, 400, f"still to send ({status})", status=status)
    text(session, fr, 400, "with Twilio", status="queued")
    text(session, None, 181, "line gone")  # its line removed: the default retention
    text(session, None, 100, "line gone, recent")
    assert retention.purge_old_bodies(now=NOW, chunk=2) == 4
    assert bodies(session) == [
        ("", "delivered"), ("recent UK", "delivered"), ("", "delivered"), ("récent", "delivered"),
        ("still to send (pending)", "pending"), ("still to send (deferred)", "deferred"),
        ("still to send (retrying)", "retrying"), ("still to send (submitting)", "submitting"),
        ("", "queued"), ("", "delivered"), ("line gone, recent", "delivered")]
    assert retention.purge_old_bodies(now=NOW) == 0  # again: nothing more


def test_many_old_texts_go_in_chunks(session, lines):
    uk, _fr = lines
    session.execute(sa.insert(Message), [dict(direction="inbound", line_id=uk.id, body=f"text {i}", status="received",
                                              created_at=NOW - dt.timedelta(days=200, minutes=i),
                                              updated_at=NOW) for i in range(2_500)])
    assert retention.purge_old_bodies(now=NOW, chunk=1000) == 2_500
    assert session.scalar(sa.select(sa.func.count()).select_from(Message).where(Message.body != "")) == 0


def test_the_purge_reads_the_partial_index(session, lines):
    """Its select can be answered from ix_messages_created_at_with_body (planners prefer a scan of a
    small table, so the scan is made to cost more)."""
    bind = session.connection()
    old = retention.old_texts(NOW, [lines[0].id, retention.NO_LINE], 10)
    sql = str(old.compile(bind, compile_kwargs={"literal_binds": True}))
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in bind.exec_driver_sql("EXPLAIN " + sql))
    else:
        plan = "\n".join(str(r[-1]) for r in bind.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "ix_messages_created_at_with_body" in plan, plan


def test_the_purge_is_a_daily_job_on_the_bulk_lane_and_runs_in_a_worker(app, session, lines):
    [job] = [p for p in PERIODIC if p.func is retention.purge_old_bodies]
    assert (job.name, job.queue, job.cron) == ("purge-message-bodies", "bulk", "41 3 * * *")
    message = text(session, lines[0], 0)
    message.created_at = utcnow() - dt.timedelta(days=181)
    session.commit()
    queues()["bulk"].enqueue(retention.purge_old_bodies)
    make_worker(app, simple=True).work(burst=True, with_scheduler=False)
    session.expire_all()
    assert db.session().get(Message, message.id).body == ""


def test_retention_days_from_the_cli_with_its_range(runner, session, group):
    r = runner.invoke(cli, ["group", "configure", str(group.id), "--retention-days", "30"])
    assert r.exit_code == 0, r.output
    assert "texts' bodies kept 30 days" in r.output
    for days in ("0", "3651", "-5"):
        r = runner.invoke(cli, ["group", "configure", str(group.id), "--retention-days", days])
        assert r.exit_code == 2 and f"Message bodies are kept 1 to 3650 days, not {days}." in r.output
    r = runner.invoke(cli, ["group", "configure", str(group.id), "--retention-days", "soon"])
    assert r.exit_code == 2 and "'soon' is not a valid integer" in r.output
    session.refresh(group)
    assert group.message_retention_days == 30
