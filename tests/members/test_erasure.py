import datetime as dt
import json

import pytest
import sqlalchemy as sa

from telline.accounts import access
from telline.members import erasure, records
from telline.members.records import InvalidMember
from telline.models import (
    AuditEvent,
    Call,
    ConferenceParticipant,
    ConsentEvent,
    InboxItem,
    Line,
    Member,
    Membership,
    Message,
)
from telline.sms import consent

NUMBER = "+447400123456"
OTHER = "+447400123457"
LINE = "+442079460000"
T0 = dt.datetime(2026, 11, 1, 18, 30, tzinfo=dt.UTC)


@pytest.fixture
def held(session, coordinator, group, other_group, admin):
    """Jo: a member of two groups, with texts (one still to send), a call with a recorded name, a
    meeting attended, an inbox item; and Kim, another member, whose rows must stay as they are."""
    line = Line(group_id=group.id, phone_number=LINE)
    session.add(line)
    session.flush()
    jo, _ = records.add_member(session, coordinator, group.id, number=NUMBER, display_name="Jo",
                               consent_given=records.GivenConsent("paper form", dt.date(2026, 10, 1)))
    records.add_member(session, admin, other_group.id, number=NUMBER)
    kim, _ = records.add_member(session, coordinator, group.id, number=OTHER, display_name="Kim")
    texts = [
        Message(direction="inbound", line_id=line.id, member_id=jo.id, from_number=NUMBER, to_number=LINE,
                body="Rough day. My sister's number is 07400 999999", status="received", created_at=T0),
        Message(direction="outbound", line_id=line.id, member_id=jo.id, from_number=LINE, to_number=NUMBER,
                body="A coordinator will read your message.", status="delivered", kind="reply", created_at=T0),
        Message(direction="outbound", line_id=line.id, member_id=jo.id, from_number=LINE, to_number=NUMBER,
                body="Reminder: meeting at 19:00", status="deferred", kind="reminder", created_at=T0),
        Message(direction="inbound", line_id=line.id, member_id=kim.id, from_number=OTHER, to_number=LINE,
                body="Kim's own text", status="received", created_at=T0),
    ]
    session.add_all(texts)
    session.add(Call(twilio_sid="CA" + "1" * 32, direction="inbound", line_id=line.id, member_id=jo.id,
                     from_number=NUMBER, to_number=LINE, status="completed", role="member", started_at=T0,
                     name_recording_url="https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"))
    session.add(ConferenceParticipant(conference_sid="CF" + "1" * 32, call_sid="CA" + "1" * 32, member_id=jo.id,
                                      joined_at=T0, left_at=T0 + dt.timedelta(minutes=40)))
    session.flush()
    session.add(InboxItem(message_id=texts[0].id, group_id=group.id, member_id=jo.id, created_at=T0))
    session.flush()
    return jo, kim, texts


def test_data_export_holds_everything_about_the_number(session, admin, group, other_group, held):
    jo, _kim, texts = held
    data = erasure.data_export(session, admin, "+44 7400 123456")
    assert json.loads(json.dumps(data)) == data  # JSON as it is
    assert data["number"] == NUMBER and data["member"]["display_name"] == "Jo" and data["member"]["id"] == jo.id
    assert [(m["group_id"], m["group"], m["status"]) for m in data["memberships"]] == [
        (group.id, "Carers", "active"), (other_group.id, "Aidants", "active")]
    assert [(c["action"], c["source"], c["detail"], c["given_on"]) for c in data["consent"]] == [
        ("opt_in", "web", "paper form", "2026-10-01")]
    assert [(m["direction"], m["body"], m["line"]) for m in data["messages"]] == [
        ("inbound", "Rough day. My sister's number is 07400 999999", LINE),
        ("outbound", "A coordinator will read your message.", LINE),
        ("outbound", "Reminder: meeting at 19:00", LINE)]
    assert data["messages"][0]["created_at"] == "2026-11-01T18:30:00+00:00"
    assert [(c["from_number"], c["name_recording_url"][-3:]) for c in data["calls"]] == [(NUMBER, "RE1")]
    assert [(a["joined_at"], a["left_at"]) for a in data["attendance"]] == [
        ("2026-11-01T18:30:00+00:00", "2026-11-01T19:10:00+00:00")]
    assert [i["message_id"] for i in data["inbox"]] == [texts[0].id]
    event = session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.action, event.target_id, event.detail) == ("members.data_export", jo.id, {"rows": 9})


def test_data_export_of_a_number_telline_does_not_know(session, admin, held):
    data = erasure.data_export(session, admin, "+447911123456")
    assert data["member"] is None and all(data[k] == [] for k in ("memberships", "consent", "messages", "calls",
                                                                  "attendance", "inbox"))
    with pytest.raises(InvalidMember, match="is too short"):
        erasure.data_export(session, admin, "+44 74")


def test_erasure_blanks_the_person_and_keeps_the_ledger(session, admin, held):
    jo, kim, texts = held
    report = erasure.erase(session, admin, NUMBER)
    assert report == erasure.ErasureReport(member_id=jo.id, messages=3, refused=1, calls=1, opted_out=True)
    session.expire_all()
    assert session.get(Member, jo.id) is None
    assert session.scalars(sa.select(Membership.member_id)).all() == [kim.id]
    rows = [(m.body, m.from_number, m.to_number, m.member_id, m.status)
            for m in session.scalars(sa.select(Message).order_by(Message.id))]
    assert rows == [("", None, LINE, None, "received"), ("", LINE, None, None, "delivered"),
                    ("", LINE, None, None, "refused"), ("Kim's own text", OTHER, LINE, kim.id, "received")]
    call = session.scalar(sa.select(Call))
    assert (call.from_number, call.member_id, call.name_recording_url, call.status) == (None, None, None, "completed")
    assert session.scalar(sa.select(ConferenceParticipant.member_id)) is None
    assert session.scalar(sa.select(InboxItem.member_id)) is None
    ledger = [(e.phone, e.action, e.source) for e in session.scalars(sa.select(ConsentEvent).order_by(ConsentEvent.id))]
    assert ledger == [(NUMBER, "opt_in", "web"), (NUMBER, "opt_out", "erasure")]
    assert consent.is_opted_out(session, NUMBER)  # added again later, the number needs a new opt-in
    event = session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.action, event.target_id, event.detail) == ("members.erase", jo.id, {"rows": 4, "count": 1})
    assert NUMBER not in json.dumps([e.detail for e in session.scalars(sa.select(AuditEvent))])
    # Once more: nothing left to erase, and no second opt-out.
    assert erasure.erase(session, admin, NUMBER) == erasure.ErasureReport(None, 0, 0, 0, False)
    assert session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 2


def test_only_an_admin_may_export_or_erase_a_number(session, coordinator, held):
    for call in (erasure.data_export, erasure.erase):
        with pytest.raises(access.Forbidden, match="Only an admin may do this"):
            call(session, coordinator, NUMBER)
    assert session.scalar(sa.select(Member.display_name).where(Member.phone == NUMBER)) == "Jo"
    assert [a for a in session.scalars(sa.select(AuditEvent.action))
            if a.startswith(("members.erase", "members.data"))] == []
