"""The outbound pipeline: once, never to an opted-out number, at the right hour, through Twilio's errors."""

import datetime as dt

import pytest
import sqlalchemy as sa

from telline import tasks
from telline.models import Message, utcnow
from telline.sms import consent
from telline.sms.delivery import MAX_ATTEMPTS, deliver
from telline.sms.outbound import InvalidText, send_text
from telline.twilio.gateway import gateway
from tests.sms.conftest import add_member, outbound, run_jobs, scheduled_count, texts_to

ANA = "+447911123456"


def ask(session, line, body="Reminder: meeting tonight at 7pm.", key="k1", to=ANA, **kw):
    msg = send_text(session, line=line, to=to, body=body, idempotency_key=key, **kw)
    session.commit()
    return msg


def test_a_text_is_sent_once_with_a_status_callback(app, session, group, line, standin):
    msg = ask(session, line)
    run_jobs(app)
    [sent] = standin.requests(method="POST", path_suffix="Messages.json")
    assert (sent.get("To"), sent.get("From"), sent.get("Body")) == (ANA, line.phone_number, msg.body)
    assert sent.get("StatusCallback") == "http://telline.test/twilio/sms/status"
    session.refresh(msg)
    assert msg.status == "queued" and msg.twilio_sid.startswith("SM") and msg.attempts == 1


def test_asking_twice_with_one_key_sends_once(app, session, group, line, standin):
    first = ask(session, line)
    again = ask(session, line, body="a different body")
    run_jobs(app)
    assert first.id == again.id
    assert len(texts_to(standin, ANA)) == 1


def test_running_the_job_again_sends_nothing_more(app, session, group, line, standin):
    msg = ask(session, line)
    run_jobs(app)
    assert deliver(msg.id) == "queued"
    assert len(texts_to(standin, ANA)) == 1


def test_bad_bodies_are_refused_before_anything_is_written(session, group, line):
    for body in ("", "x" * 1601):
        with pytest.raises(InvalidText):
            send_text(session, line=line, to=ANA, body=body, idempotency_key=f"bad{len(body)}")
    assert outbound(session) == []


def test_segments_and_encoding_are_recorded(session, group, line):
    assert ask(session, line, body="é" * 160, key="a").segments == 1
    assert ask(session, line, body="é" * 161, key="b").segments == 2
    emoji = ask(session, line, body="merci 🙏", key="c")
    assert (emoji.encoding, emoji.segments) == ("UCS-2", 1)


def test_a_number_opted_out_after_asking_is_never_texted(app, session, group, line, standin):
    msg = ask(session, line)
    consent.record(session, ANA, consent.OPT_OUT, "keyword")
    session.commit()
    run_jobs(app)
    session.refresh(msg)
    assert (msg.status, msg.error_message) == ("refused", "the number opted out")
    assert standin.messages_sent() == []


def test_a_text_whose_line_was_removed_is_refused_not_failed_over_and_over(app, session, group, line, standin):
    # A line's texts keep their rows when it goes (line_id NULL): the job says so and is done.
    msg = ask(session, line)
    session.delete(line)
    session.commit()
    run_jobs(app)
    session.refresh(msg)
    assert (msg.line_id, msg.status, msg.error_message) == (None, "refused", "its line is gone")
    assert standin.messages_sent() == []
    assert tasks.pending(session) == 0


class TestQuietHours:
    def quiet_now(self, session, group):
        now = utcnow().astimezone(dt.timezone(dt.timedelta(hours=1)))  # the group's zone below
        group.timezone = "Etc/GMT-1"  # UTC+1, no DST: the test does not depend on the date
        group.quiet_start = (now - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
        group.quiet_end = (now + dt.timedelta(hours=2)).time().replace(second=0, microsecond=0)
        session.commit()
        return now

    def test_ordinary_texts_wait_for_the_end_of_quiet_hours(self, app, session, group, line, standin):
        now = self.quiet_now(session, group)
        msg = ask(session, line)
        run_jobs(app)
        session.refresh(msg)
        assert msg.status == "deferred" and standin.messages_sent() == []
        two_hours_on = (now + dt.timedelta(hours=2)).replace(second=0, microsecond=0)
        assert abs(msg.send_after - two_hours_on) < dt.timedelta(minutes=1)
        assert scheduled_count() == 1

    def test_the_members_own_time_zone_wins(self, app, session, group, line, standin):
        self.quiet_now(session, group)
        member = add_member(session, group, tz="Etc/GMT+11")  # 12 hours away from the group
        msg = ask(session, line, member_id=member.id)
        run_jobs(app)
        session.refresh(msg)
        assert msg.status == "queued"

    def test_urgent_texts_go_at_once(self, app, session, group, line, standin):
        self.quiet_now(session, group)
        msg = ask(session, line, urgent=True)
        run_jobs(app)
        session.refresh(msg)
        assert msg.status == "queued" and len(standin.messages_sent()) == 1


class TestTwilioErrors:
    def test_21610_records_the_opt_out_and_is_not_retried(self, app, session, group, line, standin):
        standin.fail(400, 21610, "Attempt to send to unsubscribed recipient")
        msg = ask(session, line)
        run_jobs(app, scheduled=True)
        session.refresh(msg)
        assert (msg.status, msg.error_code) == ("refused", 21610)
        assert consent.is_opted_out(session, ANA)
        assert len(standin.requests(method="POST", path_suffix="Messages.json")) == 1

    @pytest.mark.parametrize("code,flag", [(21211, "invalid"), (21614, "landline"), (21635, "landline")])
    def test_numbers_that_cannot_take_texts_are_flagged_for_coordinators(self, app, session, group, line,
                                                                         standin, code, flag):
        member = add_member(session, group)
        standin.fail(400, code, "not textable")
        msg = ask(session, line, member_id=member.id)
        run_jobs(app, scheduled=True)
        session.refresh(msg)
        session.refresh(member)
        assert (msg.status, msg.error_code, member.sms_status) == ("failed", code, flag)
        assert len(standin.requests(method="POST", path_suffix="Messages.json")) == 1
        from telline.sms.reports import failures
        [row] = failures(session, group.id)
        assert (row.member_id, row.problem, row.number) == (member.id, flag, "+44••••••3456")

    @pytest.mark.parametrize("status,code", [(429, 20429), (503, None), (500, None)])
    def test_slow_down_and_server_errors_are_retried_until_sent_once(self, app, session, group, line,
                                                                     standin, status, code):
        standin.fail(status, code, "try later", times=2)
        msg = ask(session, line)
        run_jobs(app)
        session.refresh(msg)
        assert msg.status == "retrying" and scheduled_count() == 1  # backoff: RQ holds the retry
        run_jobs(app, scheduled=True)
        session.refresh(msg)
        assert (msg.status, msg.attempts) == ("queued", 3)
        assert len(texts_to(standin, ANA)) == 1

    def test_a_send_that_keeps_failing_ends_failed(self, app, session, group, line, standin):
        standin.fail(503, None, "down", times=None)
        msg = ask(session, line)
        run_jobs(app, scheduled=True, rounds=MAX_ATTEMPTS + 2)
        session.refresh(msg)
        assert (msg.status, msg.attempts) == ("failed", MAX_ATTEMPTS)
        assert standin.messages_sent() == []


class TestUnknownOutcome:
    def test_a_dropped_answer_is_reconciled_not_resent(self, app, session, group, line, standin):
        standin.drop(method="POST", path_suffix="Messages.json")  # Twilio creates it; we never hear back
        msg = ask(session, line)
        run_jobs(app, scheduled=True)
        session.refresh(msg)
        [created] = standin.messages_sent()
        assert msg.twilio_sid == created["sid"] and msg.status == "queued"

    def test_a_worker_killed_after_claiming_is_recovered_without_a_duplicate(self, app, session, group, line,
                                                                              standin):
        msg = ask(session, line)
        # What a worker killed mid-request leaves: the row claimed long ago, the message at Twilio.
        twin = gateway().send_sms(from_=line.phone_number, to=ANA, body=msg.body)
        session.execute(sa.update(Message).where(Message.id == msg.id).values(
            status="submitting", attempts=1, updated_at=utcnow() - dt.timedelta(minutes=10)))
        session.commit()
        assert deliver(msg.id) == "queued"
        session.refresh(msg)
        assert msg.twilio_sid == twin.sid
        assert len(standin.messages_sent()) == 1

    def test_a_worker_killed_before_sending_is_recovered_by_sending(self, app, session, group, line, standin):
        msg = ask(session, line)
        session.execute(sa.update(Message).where(Message.id == msg.id).values(
            status="submitting", attempts=1, updated_at=utcnow() - dt.timedelta(minutes=10)))
        session.commit()
        assert deliver(msg.id) == "queued"
        assert len(standin.messages_sent()) == 1

    def test_a_claim_still_in_flight_is_left_alone(self, app, session, group, line, standin):
        msg = ask(session, line)
        session.execute(sa.update(Message).where(Message.id == msg.id).values(status="submitting", attempts=1))
        session.commit()
        assert deliver(msg.id) == "submitting"
        assert standin.messages_sent() == [] and scheduled_count() == 1  # put back for later
