import dataclasses
import datetime as dt

import pytest
import sqlalchemy as sa

from telline.accounts import access
from telline.members import records
from telline.members.records import GivenConsent, InvalidMember
from telline.models import AuditEvent, ConsentEvent, Member, Membership
from telline.sms import consent


def add(session, user, group, number="07400 123456", **kw):
    record, _outcome = records.add_member(session, user, group.id, number=number, **kw)
    return record


def audit_actions(session):
    return [(e.action, e.target_id, e.detail) for e in session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))]


def test_add_reads_the_number_in_the_groups_country_and_masks_it(session, coordinator, group):
    record = add(session, coordinator, group, display_name="  Jo \n Smith ", language="FR", timezone="Europe/Paris")
    assert record.number == "+44••••••3456"
    assert (record.display_name, record.language, record.timezone) == ("Jo Smith", "fr", "Europe/Paris")
    assert record.status == "active" and record.active and record.consent is None
    assert session.scalar(sa.select(Member.phone).where(Member.id == record.id)) == "+447400123456"
    full = records.get_member(session, coordinator, group.id, record.id, full_number=True)
    assert full.number == "+447400123456"
    assert audit_actions(session) == [
        ("members.add", record.id, {"fields": ["display_name", "language", "timezone"]}),
        ("members.view_numbers", record.id, {})]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.display_name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(("fields", "message"), [
    ({"number": "12"}, "“12” is too short"),
    ({"number": "07400 12"}, "“07400 12” is not a number in use"),
    ({"number": "not a number"}, "is not a phone number"),
    ({"number": "+44 7400 123456 ext. 3"}, "has an extension"),
    ({"language": "de"}, "Language “de” is not available; choose one of en, fr"),
    ({"timezone": "Mars/Olympus"}, "'Mars/Olympus' is not a time zone"),
    ({"display_name": "x" * 81}, "at most 80 characters"),
    ({"consent_given": GivenConsent("paper form", dt.date(2999, 1, 1))}, "2999-01-01 is in the future"),
    ({"consent_given": GivenConsent("  ", dt.date(2026, 1, 1))}, "Say how consent was given"),
])
def test_bad_fields_each_have_their_sentence_and_write_nothing(session, coordinator, group, fields, message):
    fields = {"number": "07400 123456", **fields}
    with pytest.raises(InvalidMember, match=message):
        records.add_member(session, coordinator, group.id, **fields)
    assert session.scalars(sa.select(Member)).all() == [] and audit_actions(session) == []


def test_same_number_twice_is_refused_and_a_known_number_joins_another_group(session, coordinator, group,
                                                                          other_group, admin):
    first = add(session, coordinator, group, display_name="Jo")
    with pytest.raises(InvalidMember, match=rf"already a member of the group \(member {first.id}\)"):
        add(session, coordinator, group, number="+44 7400 123456")
    again = add(session, admin, other_group, number="+447400123456", language="fr")
    assert again.id == first.id and again.group_id == other_group.id and again.display_name == "Jo"
    records.deactivate(session, coordinator, group.id, first.id)
    with pytest.raises(InvalidMember, match="deactivated: reactivate them instead"):
        add(session, coordinator, group)


def test_consent_is_recorded_only_when_told_how_and_never_over_a_stop(session, coordinator, group):
    _record, outcome = records.add_member(session, coordinator, group.id, number="07400 123456")
    assert outcome == "none" and session.scalars(sa.select(ConsentEvent)).all() == []
    given = GivenConsent("paper form at the meeting", dt.date(2026, 11, 2))
    record, outcome = records.add_member(session, coordinator, group.id, number="07400 123457", consent_given=given)
    assert outcome == "recorded" and record.consent == "opt_in"
    event = session.scalar(sa.select(ConsentEvent))
    assert (event.phone, event.action, event.source, event.detail, event.given_on, event.group_id) == (
        "+447400123457", "opt_in", "web", "paper form at the meeting", dt.date(2026, 11, 2), group.id)
    consent.record(session, "+447400123458", consent.OPT_OUT, "keyword", detail="STOP")
    record, outcome = records.add_member(session, coordinator, group.id, number="07400 123458", consent_given=given)
    assert outcome == "opted_out" and record.consent == "opt_out"


def test_update_changes_given_fields_and_a_new_number_starts_clean(session, coordinator, group):
    record = add(session, coordinator, group, display_name="Jo", language="fr")
    member = session.get(Member, record.id)
    member.sms_status, member.sms_status_detail = "landline", "21614: not a mobile number"
    updated, changed = records.update_member(session, coordinator, group.id, record.id, display_name="Joanna",
                                             language="")
    assert changed == ["display_name", "language"] and (updated.display_name, updated.language) == ("Joanna", None)
    assert records.update_member(session, coordinator, group.id, record.id, display_name="Joanna")[1] == []
    updated, changed = records.update_member(session, coordinator, group.id, record.id, number="07911 123456")
    assert changed == ["phone", "sms_status", "sms_status_detail"] and updated.number_status == "ok"
    other = add(session, coordinator, group, number="07400 123457")
    with pytest.raises(InvalidMember, match="Another member already has this number"):
        records.update_member(session, coordinator, group.id, other.id, number="+447911123456")
    with pytest.raises(InvalidMember, match="not a time zone"):
        records.update_member(session, coordinator, group.id, other.id, timezone="Europe/Nowhere")
    assert [a for a, _t, _d in audit_actions(session)] == ["members.add", "members.update", "members.update",
                                                           "members.add"]


def test_deactivate_and_reactivate_flip_the_membership_once(session, coordinator, group):
    record = add(session, coordinator, group)
    assert records.deactivate(session, coordinator, group.id, record.id).status == "left"
    assert records.deactivate(session, coordinator, group.id, record.id).status == "left"  # again: nothing new
    assert records.reactivate(session, coordinator, group.id, record.id).active
    assert [a for a, _t, _d in audit_actions(session)] == ["members.add", "members.deactivate", "members.reactivate"]
    session.get_one(Membership, session.scalar(sa.select(Membership.id))).status = "pending"
    with pytest.raises(InvalidMember, match="become active when they reply YES"):
        records.reactivate(session, coordinator, group.id, record.id)


def test_reset_number_flag(session, coordinator, group):
    record = add(session, coordinator, group)
    with pytest.raises(InvalidMember, match="no flag to clear"):
        records.reset_number_flag(session, coordinator, group.id, record.id)
    member = session.get(Member, record.id)
    member.sms_status, member.sms_status_detail = "invalid", "21211: invalid 'To' number"
    assert records.get_member(session, coordinator, group.id, record.id).number_status == "invalid"
    cleared = records.reset_number_flag(session, coordinator, group.id, record.id)
    assert (cleared.number_status, cleared.number_status_detail) == ("ok", "")
    assert audit_actions(session)[-1] == ("members.reset_flag", record.id, {"fields": ["sms_status"]})


def test_list_pages_by_id_with_filters(session, coordinator, group):
    names = ["Ann Lee", "Bob", "ann-marie", "Carl", "Dee 50%"]
    ids = [add(session, coordinator, group, number=f"07400 12345{i}", display_name=n).id
           for i, n in enumerate(names)]
    consent.record(session, "+447400123451", consent.OPT_IN, "keyword")
    consent.record(session, "+447400123453", consent.OPT_IN, "keyword")
    consent.record(session, "+447400123453", consent.OPT_OUT, "keyword")
    records.deactivate(session, coordinator, group.id, ids[3])
    first = records.list_members(session, coordinator, group.id, limit=2)
    assert [m.display_name for m in first.members] == ["Ann Lee", "Bob"] and first.next_after == ids[1]
    second = records.list_members(session, coordinator, group.id, limit=2, after_id=first.next_after)
    third = records.list_members(session, coordinator, group.id, limit=2, after_id=second.next_after)
    assert [m.display_name for m in second.members + third.members] == ["ann-marie", "Carl", "Dee 50%"]
    assert third.next_after is None
    def names_for(**kw):
        return [m.display_name for m in records.list_members(session, coordinator, group.id, **kw).members]
    assert names_for(search="ANN") == ["Ann Lee", "ann-marie"]
    assert names_for(search="ann lee") == ["Ann Lee"]
    assert names_for(search="50%") == ["Dee 50%"] and names_for(search="%") == ["Dee 50%"]
    assert names_for(opted_in=True) == ["Bob"]
    assert names_for(opted_in=False) == ["Ann Lee", "ann-marie", "Carl", "Dee 50%"]
    assert names_for(active=False) == ["Carl"] and names_for(active=True, opted_in=False) == ["Ann Lee", "ann-marie",
                                                                                               "Dee 50%"]
    page = records.list_members(session, coordinator, group.id, limit=1)
    assert page.members[0].number == "+44••••••3450" and page.members[0].consent is None
    assert records.list_members(session, coordinator, group.id, limit=1, full_numbers=True).members[0].number == \
        "+447400123450"
    with pytest.raises(InvalidMember, match="1 to 500"):
        records.list_members(session, coordinator, group.id, limit=0)


def test_another_groups_members_are_not_there(session, coordinator, other_coordinator, group, other_group):
    record = add(session, coordinator, group)
    for call in (lambda: records.get_member(session, other_coordinator, group.id, record.id),
                 lambda: records.list_members(session, other_coordinator, group.id),
                 lambda: records.consent_history(session, other_coordinator, group.id, record.id),
                 lambda: records.update_member(session, other_coordinator, group.id, record.id, display_name="x"),
                 lambda: records.deactivate(session, other_coordinator, group.id, record.id),
                 lambda: records.add_member(session, other_coordinator, group.id, number="07400 123457")):
        with pytest.raises(access.NotFound, match=f"There is no group {group.id}"):
            call()
    # Their own group id, someone else's member: the same answer as no such member.
    with pytest.raises(access.NotFound, match=f"There is no member {record.id} in this group"):
        records.get_member(session, other_coordinator, other_group.id, record.id)
    with pytest.raises(access.NotFound, match=f"There is no member {record.id} in this group"):
        records.reset_number_flag(session, other_coordinator, other_group.id, record.id)
    assert session.get(Member, record.id).display_name == ""


def test_consent_history_is_the_ledger_with_other_groups_events_veiled(session, coordinator, admin, group,
                                                                       other_group):
    record = add(session, coordinator, group)
    number = "+447400123456"
    consent.record(session, number, consent.OPT_IN, "keyword", group_id=other_group.id, detail="JOIN AIDE12")
    consent.record(session, number, consent.OPT_OUT, "keyword", detail="STOP")
    consent.record(session, number, consent.OPT_IN, "import", group_id=group.id, detail="paper form",
                   given_on=dt.date(2026, 1, 5))
    consent.record(session, "+447400123457", consent.OPT_OUT, "keyword")  # another number
    history = records.consent_history(session, coordinator, group.id, record.id)
    assert [(h.action, h.source, h.group_id, h.detail, h.elsewhere, h.given_on) for h in history] == [
        ("opt_in", "keyword", None, "", True, None),
        ("opt_out", "keyword", None, "STOP", False, None),
        ("opt_in", "import", group.id, "paper form", False, dt.date(2026, 1, 5))]
    assert [(h.group_id, h.detail) for h in records.consent_history(session, admin, group.id, record.id)][0] == (
        other_group.id, "JOIN AIDE12")
    with pytest.raises(dataclasses.FrozenInstanceError):
        history[0].action = "opt_out"  # type: ignore[misc]
