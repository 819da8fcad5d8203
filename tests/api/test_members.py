"""/api/v1's members: add, list, edit, deactivate, the consent ledger, number flags, the CSV import
(preview, then all or nothing) and export, and a number's data export and erasure (admins)."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from telline.models import AuditEvent, ConsentEvent, Member

FILE = ("phone,name,language,consent,consent_source,consent_date\r\n"
        "07911 123001,Ana,en,yes,paper form at the meeting,2026-11-20\r\n"
        "07911 123002,Bob,fr,,,\r\n"
        "not a number,Cleo,en,,,\r\n"
        "07911 123001,Ana again,en,,,\r\n")


def test_add_list_edit_and_deactivate_a_member(api, world, session):
    ana = api(world.ana_token)
    made = ana.post(f"/groups/{world.mine.id}/members", json={
        "number": "07911 123123", "display_name": "Sam",
        "consent": {"how": "said yes on the phone", "on": "2026-11-30"}})
    assert made.status_code == 201, made.json
    assert made.json["number"] == "+44••••••3123" and made.json["consent_outcome"] == "recorded"
    assert made.json["consent"] == "opt_in" and made.json["status"] == "active"
    member_id = made.json["id"]
    listed = ana.get(f"/groups/{world.mine.id}/members?search=sa").json
    assert [m["display_name"] for m in listed["items"]] == ["Sam"] and listed["next"] is None
    full = ana.get(f"/groups/{world.mine.id}/members/{member_id}?full_number=true").json
    assert full["number"] == "+447911123123"
    edited = ana.patch(f"/groups/{world.mine.id}/members/{member_id}", json={"display_name": "Samuel",
                                                                            "status": "left"})
    assert (edited.json["display_name"], edited.json["status"]) == ("Samuel", "left")
    assert ana.get(f"/groups/{world.mine.id}/members?active=true").json["items"] == []
    history = ana.get(f"/groups/{world.mine.id}/members/{member_id}/consent").json
    assert [(h["action"], h["source"], h["given_on"]) for h in history] == [("opt_in", "web", "2026-11-30")]
    actions = session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["members.add", "members.view_numbers", "members.update", "members.deactivate"]


def test_bad_member_input_gets_a_sentence_and_writes_nothing(api, world, session):
    ana = api(world.ana_token)
    bad = ana.post(f"/groups/{world.mine.id}/members", json={"number": "12"})
    assert bad.status_code == 422 and bad.json["error"]["code"] == "invalid"
    assert bad.json["error"]["message"].endswith(".")
    wrong_type = ana.post(f"/groups/{world.mine.id}/members", json={"number": 7700900123})
    assert wrong_type.status_code == 422 and "number" in wrong_type.json["error"]["fields"]
    assert ana.get(f"/groups/{world.mine.id}/members?limit=501").status_code == 422
    assert session.scalars(sa.select(Member)).all() == []


def test_import_previews_row_by_row_then_imports_the_valid_rows_or_nothing(api, world, session):
    ana = api(world.ana_token)
    path = f"/groups/{world.mine.id}/members/import"
    preview = ana.post(path, data=FILE, content_type="text/csv")
    assert preview.status_code == 200, preview.json
    rows = {r["row"]: r for r in preview.json["rows"]}
    assert (preview.json["valid"], preview.json["errors"], preview.json["imported"]) == (2, 2, None)
    assert rows[2]["ok"] and rows[2]["consent"] != "none" and rows[2]["number"] == "+44••••••3001"
    assert not rows[4]["ok"] and rows[4]["message"] and not rows[5]["ok"]
    assert session.scalars(sa.select(Member)).all() == []  # a preview writes nothing
    refused = ana.post(path + "?preview=false&all_valid=true", data=FILE, content_type="text/csv")
    assert refused.status_code == 422 and set(refused.json["error"]["fields"]) == {"4", "5"}
    assert session.scalars(sa.select(Member)).all() == []
    done = ana.post(path + "?preview=false", data=FILE, content_type="text/csv")
    assert (done.json["imported"], done.json["consent_recorded"]) == (2, 1)
    assert sorted(m.display_name for m in session.scalars(sa.select(Member))) == ["Ana", "Bob"]
    assert session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 1  # only where the file says how
    not_utf8 = ana.post(path, data="phone,name\r\n07911 123003,Zoë\r\n".encode("latin-1"), content_type="text/csv")
    assert not_utf8.status_code == 422 and "UTF-8" in not_utf8.json["error"]["message"]


def test_export_is_csv_that_the_import_reads_back(api, world):
    ana = api(world.ana_token)
    ana.post(f"/groups/{world.mine.id}/members/import?preview=false", data=FILE, content_type="text/csv")
    exported = ana.get(f"/groups/{world.mine.id}/members.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert sorted(r["name"] for r in rows) == ["Ana", "Bob"]
    again = ana.post(f"/groups/{world.mine.id}/members/import", data=exported.get_data(), content_type="text/csv")
    assert again.json["valid"] == 0 and again.json["errors"] == 2  # both already members: said per row


def test_data_export_and_erasure_are_for_admins(api, world, session):
    ana, admin = api(world.ana_token), api(world.admin_token)
    ana.post(f"/groups/{world.mine.id}/members", json={"number": "07911 123123", "display_name": "Sam"})
    assert ana.post("/numbers/data-export", json={"number": "+447911123123"}).status_code == 403
    exported = admin.post("/numbers/data-export", json={"number": "07911 123123", "region": "GB"})
    assert exported.status_code == 200 and "Sam" in exported.get_data(as_text=True)
    erased = admin.post("/numbers/erase", json={"number": "+447911123123"})
    assert erased.status_code == 200 and erased.json["opted_out"] is True
    assert session.scalars(sa.select(Member)).all() == []
    assert session.scalars(sa.select(ConsentEvent.action)).all()[-1] == "opt_out"  # the ledger is kept
