import datetime as dt

import pytest
import sqlalchemy as sa

from telline.accounts import access
from telline.members import csv_export, csv_import, records
from telline.members.csv_import import ImportConflict, ImportFileError, ImportRejected
from telline.models import AuditEvent, ConsentEvent, Member, Membership
from telline.sms import consent

HEADER = "phone,name,language,timezone,consent,consent_source,consent_date\n"


@pytest.fixture
def known(session, coordinator, group):
    """A member of the group already, and a number that texted STOP."""
    record, _ = records.add_member(session, coordinator, group.id, number="07911 123456", display_name="Old")
    consent.record(session, "+447400123461", consent.OPT_OUT, "keyword", detail="STOP")
    return record


def rows_of(preview):
    return [(r.row, r.ok, r.message) for r in preview.rows]


MIXED = HEADER + (
    "07400 123456,Jo,fr,,yes,paper form,2026-11-02\n"          # 2 ok, consent recorded
    "12345,Bad\n"                                               # 3 bad number
    "+44 7400 123456,Dup\n"                                     # 4 same number as row 2
    "07400 123457,Ann,de,Mars/Base\n"                           # 5 two errors in one row
    "07400 123458,Kim,,,yes,,\n"                                # 6 ok, consent not recorded
    "07400 123459,Lu,,,yes,phone call,\n"                       # 7 half the consent
    "07911 123456,Old again\n"                                  # 8 already a member
    "07400 123460,,,,maybe\n"                                   # 9 consent neither yes nor no
    "07400 123461,Stopped,,,yes,form,2026-10-01\n"              # 10 ok, opted out: not recorded
    "07400 123462,Wide,en,,,,,extra\n"                          # 11 too many cells
    "\n"                                                        # 12 blank: skipped
    "07400 123463,Date,,,yes,form,12/05/2026\n"                 # 13 a date not ISO
    "07400 123464,Nope,,,no,form,2026-10-01\n"                  # 14 a source for a no
    "07400 123465,Future,,,yes,form,2999-01-01\n"               # 15 a date to come
)


def test_preview_says_what_each_row_would_do(session, coordinator, group, known):
    preview = csv_import.preview(session, coordinator, group.id, MIXED)
    assert rows_of(preview) == [
        (2, True, ""),
        (3, False, "“12345” has the wrong number of digits for country code +44."),
        (4, False, "The same number as row 2."),
        (5, False, "Language “de” is not available; choose one of en, fr, or leave it empty for the group's. "
                   "'Mars/Base' is not a time zone: give an IANA name such as Europe/Paris, or leave it empty "
                   "for the group's."),
        (6, True, "Consent not recorded: the file does not say how and when it was given "
                  "(consent_source and consent_date)."),
        (7, False, "consent_source and consent_date go together: give both (how and when the member said yes), "
                   "or neither."),
        (8, False, f"This number is already a member of the group (member {known.id})."),
        (9, False, "consent is yes, no or empty, not “maybe”."),
        (10, True, "Consent not recorded: this number opted out (STOP), and only the member can opt back in, "
                   "by texting START."),
        (11, False, "The row has 8 cells but the first row names 7 columns."),
        (13, False, "consent_date “12/05/2026” is not a date written like 2026-05-12 (year-month-day)."),
        (14, False, "consent_source and consent_date say how consent was given, but consent is not “yes”."),
        (15, False, "The consent date 2999-01-01 is in the future."),
    ]
    first = preview.rows[0]
    assert (first.number, first.display_name, first.language, first.consent) == ("+447400123456", "Jo", "fr", "record")
    assert (preview.valid, preview.errors) == (3, 10)
    assert session.scalar(sa.select(sa.func.count()).select_from(Member)) == 1  # the preview wrote nothing


def test_import_demanding_a_clean_file_writes_nothing(session, coordinator, group, known):
    with pytest.raises(ImportRejected, match="10 rows of the file have errors: nothing was imported.") as caught:
        csv_import.commit_import(session, coordinator, group.id, MIXED, all_valid=True)
    assert caught.value.preview.errors == 10
    assert session.scalars(sa.select(Member.display_name)).all() == ["Old"]
    assert [e.action for e in session.scalars(sa.select(ConsentEvent))] == ["opt_out"]
    assert session.scalars(sa.select(AuditEvent.action)).all() == ["members.add"]


def test_import_writes_the_valid_rows_and_consent_only_where_the_file_says_how(session, coordinator, group, known):
    result = csv_import.commit_import(session, coordinator, group.id, MIXED)
    assert (result.imported, result.consent_recorded) == (3, 1)
    members = session.execute(sa.select(Member.phone, Member.display_name, Member.language, Membership.status)
                              .join(Membership).where(Membership.group_id == group.id).order_by(Member.phone)).all()
    assert [tuple(m) for m in members] == [
        ("+447400123456", "Jo", "fr", "active"), ("+447400123458", "Kim", None, "active"),
        ("+447400123461", "Stopped", None, "active"), ("+447911123456", "Old", None, "active")]
    events = [(e.phone, e.action, e.source, e.detail, e.given_on, e.group_id)
              for e in session.scalars(sa.select(ConsentEvent).order_by(ConsentEvent.id))]
    assert events == [("+447400123461", "opt_out", "keyword", "STOP", None, None),
                      ("+447400123456", "opt_in", "import", "paper form", dt.date(2026, 11, 2), group.id)]
    assert consent.is_opted_out(session, "+447400123461")  # the STOP stands
    event = session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.action, event.group_id, event.detail) == ("members.import", group.id,
                                                            {"rows": 3, "errors": 10, "count": 1})


def test_a_failure_while_writing_leaves_nothing_half_imported(session, coordinator, group, known, monkeypatch):
    # As if the known member had been added by someone else after the check: the insert hits the
    # unique number, and the rows already inserted before it go too.
    monkeypatch.setattr(csv_import, "_known", lambda *_a: ({}, {}))
    text = HEADER + "07400 123456,A\n07400 123457,B\n07911 123456,Old\n07400 123458,C,,,yes,form,2026-01-01\n"
    with pytest.raises(ImportConflict, match="nothing was imported: preview the file again"):
        csv_import.commit_import(session, coordinator, group.id, text)
    assert session.scalars(sa.select(Member.display_name)).all() == ["Old"]
    assert session.scalar(sa.select(sa.func.count()).select_from(Membership)) == 1
    assert [e.action for e in session.scalars(sa.select(ConsentEvent))] == ["opt_out"]
    assert session.scalars(sa.select(AuditEvent.action)).all() == ["members.add"]  # no import recorded


def test_a_number_known_from_another_group_joins_this_one(session, coordinator, admin, group, other_group):
    elsewhere, _ = records.add_member(session, admin, other_group.id, number="+44 7400 123456", display_name="Jo")
    preview = csv_import.preview(session, coordinator, group.id, "phone\n07400 123456\n")
    assert rows_of(preview) == [(2, True, "")]  # nothing said of the other group
    csv_import.commit_import(session, coordinator, group.id, "phone;name\n07400 123456;Joanna\n")
    assert records.get_member(session, coordinator, group.id, elsewhere.id).display_name == "Joanna"


@pytest.mark.parametrize(("data", "message"), [
    ("Zoë,07400 123456\n".encode("cp1252"), r"The file is not UTF-8 text \(line 1 has a byte UTF-8 does not use\)"),
    (b"phone\n07400 123456\n" + b"\xff\n", "line 3 has a byte UTF-8 does not use"),
    (b"phone,name\n" + b"07400 123456," + b"x" * (5 * 1024 * 1024), "an import takes at most 5 MB"),
    ("phone\n" + "07400 123456\n" * 20_001, "more than 20,000 members; an import takes at most 20,000"),
    ("", "The file is empty"),
    ("\n\n", "The file is empty"),
    ("phone,name\n", "header row but no member"),
    ("name,language\nJo,en\n", "The file has no phone column"),
    ("phone,nom\n07400 123456,Jo\n", "Unknown column “nom”"),
    ("phone,Phone Number\n1,2\n", "The column “phone” appears twice"),
    ('phone,name\n07400 123456,"Jo\n', "Row 2 cannot be read as CSV"),
])
def test_a_file_that_cannot_be_read_is_refused_with_its_reason(session, coordinator, group, data, message):
    with pytest.raises(ImportFileError, match=message):
        csv_import.preview(session, coordinator, group.id, data)
    with pytest.raises(ImportFileError, match=message):
        csv_import.commit_import(session, coordinator, group.id, data)
    assert session.scalars(sa.select(Member)).all() == []


def test_excel_files_read_bom_semicolons_and_crlf(session, coordinator, group):
    data = "\ufeffPhone;Name;Language\r\n07400 123456;Zoë;FR\r\n".encode()
    assert [(r.number, r.display_name, r.language) for r in
            csv_import.preview(session, coordinator, group.id, data).rows] == [("+447400123456", "Zoë", "fr")]
    tabbed = "phone\tname\n07400 123456\tJo\n"
    assert csv_import.preview(session, coordinator, group.id, tabbed).rows[0].display_name == "Jo"


def test_another_groups_import_and_export_are_refused(session, other_coordinator, group, known):
    for call in (lambda: csv_import.preview(session, other_coordinator, group.id, "phone\n07400 123456\n"),
                 lambda: csv_import.commit_import(session, other_coordinator, group.id, "phone\n07400 123456\n"),
                 lambda: csv_export.export_csv(session, other_coordinator, group.id)):
        with pytest.raises(access.NotFound, match=f"There is no group {group.id}"):
            call()
    assert session.scalars(sa.select(Member.display_name)).all() == ["Old"]


def _member(session, group, number, name, status="active", **fields):
    member = Member(phone=number, display_name=name, **fields)
    session.add(member)
    session.flush()
    session.add(Membership(member_id=member.id, group_id=group.id, status=status,
                           joined_at=dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)))
    session.flush()
    return member


def test_export_writes_formula_cells_as_text(session, coordinator, group):
    # Names come from members' own texts and calls too: whatever they typed.
    _member(session, group, "+447400123456", '=HYPERLINK("http://evil.example","x")', language="fr")
    _member(session, group, "+447400123457", "@SUM(1+1)", timezone="Europe/Paris")
    _member(session, group, "+447400123458", "-2+3")
    _member(session, group, "+447400123459", "\tTab", sms_status="landline")
    _member(session, group, "+447400123460", "Plain, with a comma")
    consent.record(session, "+447400123456", consent.OPT_IN, "keyword", group_id=group.id, detail="JOIN CARE42")
    consent.record(session, "+447400123457", consent.OPT_IN, "import", group_id=group.id, detail="=form",
                   given_on=dt.date(2026, 2, 1))
    consent.record(session, "+447400123458", consent.OPT_OUT, "keyword", detail="STOP")
    text = csv_export.export_csv(session, coordinator, group.id)
    today = dt.datetime.now(dt.UTC).date().isoformat()  # the keyword opt-in was recorded now
    assert text.split("\r\n") == [
        "phone,name,language,timezone,status,consent,consent_source,consent_date,number_status,member_since",
        f"'+447400123456,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",fr,,active,yes,keyword: JOIN CARE42,"
        f"{today},ok,2026-03-01",
        "'+447400123457,'@SUM(1+1),,Europe/Paris,active,yes,'=form,2026-02-01,ok,2026-03-01",
        "'+447400123458,'-2+3,,,active,no,,,ok,2026-03-01",
        "'+447400123459,'\tTab,,,active,,,,landline,2026-03-01",
        "'+447400123460,\"Plain, with a comma\",,,active,,,,ok,2026-03-01",
        ""]
    assert session.scalars(sa.select(AuditEvent.detail).where(AuditEvent.action == "members.export")).all() == [
        {"rows": 5}]


def test_an_export_imports_back_as_it_was(session, admin, group, other_group):
    _member(session, group, "+447400123456", "=1+1", language="fr", timezone="Europe/Paris")
    _member(session, group, "+447400123457", "Ann", status="left")
    _member(session, group, "+447400123458", "+Plus")
    _member(session, group, "+447400123459", "")
    consent.record(session, "+447400123456", consent.OPT_IN, "keyword", group_id=group.id, detail="JOIN CARE42")
    consent.record(session, "+447400123457", consent.OPT_IN, "import", group_id=group.id, detail="paper form",
                   given_on=dt.date(2026, 2, 1))
    consent.record(session, "+447400123458", consent.OPT_OUT, "keyword", detail="STOP")
    exported = csv_export.export_csv(session, admin, group.id)
    preview = csv_import.preview(session, admin, other_group.id, exported)
    assert [(r.ok, r.number, r.display_name, r.language, r.timezone, r.status, r.consent) for r in preview.rows] == [
        (True, "+447400123456", "=1+1", "fr", "Europe/Paris", "active", "record"),
        (True, "+447400123457", "Ann", None, None, "left", "record"),
        (True, "+447400123458", "+Plus", None, None, "active", "none"),
        (True, "+447400123459", "", None, None, "active", "none")]
    csv_import.commit_import(session, admin, other_group.id, exported, all_valid=True)
    again = csv_export.export_csv(session, admin, other_group.id)
    # The same file, but for the dates members joined (today, in the other group) — and the group's zone.
    def without_joined(text):
        return [line.rsplit(",", 1)[0] for line in text.split("\r\n")]
    assert without_joined(again) == without_joined(exported)


def test_a_large_file_is_checked_against_telline_in_chunks(session, coordinator, group):
    numbers = [f"+4474001{i:05d}" for i in range(1_200)]
    late = records.add_member(session, coordinator, group.id, number=numbers[1_100])[0]  # past the first chunks
    consent.record(session, numbers[900], consent.OPT_OUT, "keyword")
    text = HEADER + "".join(f"{n},M{i},,,yes,sign-up sheet,2026-01-0{1 + i % 9}\n" for i, n in enumerate(numbers))
    result = csv_import.commit_import(session, coordinator, group.id, text)
    assert (result.imported, result.consent_recorded, result.preview.errors) == (1_199, 1_198, 1)
    assert [r.message for r in result.preview.rows if not r.ok] == [
        f"This number is already a member of the group (member {late.id})."]
    opted_in = records.list_members(session, coordinator, group.id, opted_in=True, limit=500).members
    assert opted_in[0].display_name == "M0"
    assert session.scalar(sa.select(sa.func.count()).select_from(Membership)) == 1_200


def test_the_readmes_example_file_previews_as_the_readme_says(session, coordinator, group):
    import pathlib
    import re
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    [example] = re.findall(r"```csv\n(.*?)```", readme, re.S)
    preview = csv_import.preview(session, coordinator, group.id, example)
    assert [(r.ok, r.number, r.consent) for r in preview.rows] == [
        (True, "+447400123456", "record"), (True, "+447911123456", "not_recorded"), (True, "+447400123457", "none")]
