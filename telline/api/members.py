"""/groups/{id}/members: a group's members, their consent history and number flags, the CSV import
(preview, then import) and export; /numbers/…: one number's data export and erasure (admins).

Everything goes through telline/members/, which checks access and writes the audit rows; the views
commit. A member's number never appears in a URL: erasure and data export take it in the body."""

from __future__ import annotations

import dataclasses
from typing import Any

from apiflask.fields import Boolean, Date, Integer, List, Nested, String
from apiflask.schemas import Schema
from apiflask.validators import Length, OneOf, Range
from flask import Response, jsonify, request

from telline import db, phone
from telline.api import errors, schemas
from telline.api.auth import auth, current_user
from telline.api.blueprint import MAX_ID, bp
from telline.members import csv_export, csv_import, erasure, records
from telline.members.records import MAX_PAGE, GivenConsent

Moment = schemas.Moment
_CSV: dict[int | str, dict[str, str | dict[str, dict[str, Any]]]] = {
    200: {"description": "CSV, the import's columns", "content": {"text/csv": {"schema": {"type": "string"}}}}}


# --- shapes --------------------------------------------------------------------------------------
class MemberOut(Schema):
    id = Integer()
    group_id = Integer()
    display_name = String()
    number = String(metadata={"description": "masked (+44•••••0123) unless full_number(s)=true was asked"})
    language = String(allow_none=True)
    timezone = String(allow_none=True)
    status = String(metadata={"description": "pending (waits for their YES), active, left"})
    consent = String(allow_none=True, metadata={"description": "opt_in, opt_out, or null (never asked)"})
    number_status = String(metadata={"description": "ok, or why texts to it fail (invalid, landline, …)"})
    number_status_detail = String()
    joined_at = Moment()
    created_at = Moment()
    consent_outcome = String(metadata={"description": "when adding one: recorded, opted_out (their STOP stands), "
                                                      "or none"})


class MemberQuery(Schema):
    limit = Integer(load_default=50, validate=Range(1, MAX_PAGE))
    after = Integer(load_default=None, validate=Range(0, MAX_ID))
    active = Boolean(load_default=None, allow_none=True)
    opted_in = Boolean(load_default=None, allow_none=True)
    search = String(load_default=None, validate=Length(max=80))
    full_numbers = Boolean(load_default=False)


class OneMemberQuery(Schema):
    full_number = Boolean(load_default=False)


class MemberPage(Schema):
    items = List(Nested(MemberOut), required=True)
    next = String(required=True, allow_none=True, metadata={"description": "pass as `after`; null: the last page"})


class ConsentIn(Schema):
    how = String(required=True, validate=Length(1, 200), metadata={"example": "paper form at the meeting"})
    on = Date(required=True)


class MemberIn(Schema):
    number = String(required=True, validate=Length(1, 40))
    display_name = String(load_default="", validate=Length(max=80))
    language = String(load_default=None, allow_none=True, validate=Length(max=8))
    timezone = String(load_default=None, allow_none=True, validate=Length(max=64))
    consent = Nested(ConsentIn, load_default=None, allow_none=True,
                     metadata={"description": "how and when they said yes to texts; without it none is recorded"})


class MemberPatch(Schema):
    display_name = String(validate=Length(max=80))
    language = String(allow_none=True, validate=Length(max=8), metadata={"description": "'' or null: the group's"})
    timezone = String(allow_none=True, validate=Length(max=64), metadata={"description": "'' or null: the group's"})
    number = String(validate=Length(1, 40), metadata={"description": "a new number starts with no consent"})
    status = String(validate=OneOf(["active", "left"]), metadata={"description": "left: deactivated"})


class ConsentOut(Schema):
    id = Integer()
    at = Moment()
    given_on = Date(allow_none=True)
    action = String()
    channel = String()
    source = String()
    detail = String()
    group_id = Integer(allow_none=True)
    elsewhere = Boolean(metadata={"description": "recorded for a group you do not have"})


class ImportQuery(Schema):
    preview = Boolean(load_default=True, metadata={"description": "true: check only, write nothing"})
    all_valid = Boolean(load_default=False, metadata={"description": "import only if every row is valid"})


class RowOut(Schema):
    row = Integer(metadata={"description": "as a spreadsheet numbers it: the header is row 1"})
    ok = Boolean()
    message = String()
    number = String(allow_none=True, metadata={"description": "masked"})
    display_name = String()
    language = String(allow_none=True)
    status = String()
    consent = String()


class ImportOut(Schema):
    imported = Integer(allow_none=True, metadata={"description": "null for a preview"})
    consent_recorded = Integer(allow_none=True)
    valid = Integer()
    errors = Integer()
    columns = List(String())
    rows = List(Nested(RowOut))


class NumberIn(Schema):
    number = String(required=True, validate=Length(1, 40))
    region = String(load_default=None, allow_none=True, validate=Length(2, 2),
                    metadata={"description": "how to read a number without +code (e.g. GB)"})


class ErasureOut(Schema):
    member_id = Integer(allow_none=True)
    messages = Integer()
    refused = Integer()
    calls = Integer()
    opted_out = Boolean()


# --- views ---------------------------------------------------------------------------------------
def _member(record: records.MemberRecord, **extra: Any) -> dict[str, Any]:
    return {**dataclasses.asdict(record), **extra}


@bp.get("/groups/<int:group_id>/members/<int:member_id>")
@bp.auth_required(auth)
@bp.input(OneMemberQuery, location="query", arg_name="query")
@bp.output(MemberOut)
@bp.doc(tags=["members"], summary="One member")
def get_member(group_id: int, member_id: int, query: dict[str, Any]) -> dict[str, Any]:
    session = db.session()
    record = records.get_member(session, current_user(), group_id, member_id, full_number=query["full_number"])
    session.commit()
    return _member(record)


# Before the list: APIFlask 3.1 takes the shortest URLs first, and registers MemberOut once only if
# a route outputs it before MemberPage nests it (else apispec warns that it was added twice).
@bp.post("/groups/<int:group_id>/members")
@bp.auth_required(auth)
@bp.input(MemberIn, arg_name="data")
@bp.output(MemberOut, status_code=201)
@bp.doc(tags=["members"], summary="Add a member; consent is recorded only when you say how and when it was given")
def add_member(group_id: int, data: dict[str, Any]) -> dict[str, Any]:
    session = db.session()
    given = GivenConsent(data["consent"]["how"], data["consent"]["on"]) if data["consent"] else None
    record, outcome = records.add_member(session, current_user(), group_id, number=data["number"],
                                         display_name=data["display_name"], language=data["language"],
                                         timezone=data["timezone"], consent_given=given)
    session.commit()
    return _member(record, consent_outcome=outcome)


@bp.get("/groups/<int:group_id>/members")
@bp.auth_required(auth)
@bp.input(MemberQuery, location="query", arg_name="query")
@bp.output(MemberPage)
@bp.doc(tags=["members"], summary="A group's members, in id order; filters: active, opted_in, search (name)")
def list_members(group_id: int, query: dict[str, Any]) -> dict[str, Any]:
    session = db.session()
    page = records.list_members(session, current_user(), group_id, after_id=query["after"], limit=query["limit"],
                                active=query["active"], opted_in=query["opted_in"], search=query["search"],
                                full_numbers=query["full_numbers"])
    session.commit()  # the audit row of full numbers, if asked
    # The records themselves (marshmallow reads their attributes): a dict copy of each would double the time.
    return {"items": page.members, "next": None if page.next_after is None else str(page.next_after)}


@bp.patch("/groups/<int:group_id>/members/<int:member_id>")
@bp.auth_required(auth)
@bp.input(MemberPatch, arg_name="data")
@bp.output(MemberOut)
@bp.doc(tags=["members"], summary="Edit a member, or deactivate (status left) / reactivate (status active)")
def update_member(group_id: int, member_id: int, data: dict[str, Any]) -> dict[str, Any]:
    session, user = db.session(), current_user()
    fields = {k: ("" if v is None else v) for k, v in data.items() if k in ("display_name", "language", "timezone",
                                                                               "number")}
    record, _changed = records.update_member(session, user, group_id, member_id, **fields)
    if data.get("status") == "left":
        record = records.deactivate(session, user, group_id, member_id)
    elif data.get("status") == "active":
        record = records.reactivate(session, user, group_id, member_id)
    session.commit()
    return _member(record)


@bp.post("/groups/<int:group_id>/members/<int:member_id>/reset-number-flag")
@bp.auth_required(auth)
@bp.output(MemberOut)
@bp.doc(tags=["members"], summary="Texts go to this number again (it was flagged invalid, landline…)")
def reset_number_flag(group_id: int, member_id: int) -> dict[str, Any]:
    session = db.session()
    record = records.reset_number_flag(session, current_user(), group_id, member_id)
    session.commit()
    return _member(record)


@bp.get("/groups/<int:group_id>/members/<int:member_id>/consent")
@bp.auth_required(auth)
@bp.output(ConsentOut(many=True))
@bp.doc(tags=["members"], summary="The number's consent ledger, oldest first (read-only)")
def consent_history(group_id: int, member_id: int) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in records.consent_history(db.session(), current_user(), group_id, member_id)]


@bp.post("/groups/<int:group_id>/members/import")
@bp.auth_required(auth)
@bp.input(ImportQuery, location="query", arg_name="query")
@bp.output(ImportOut)
@bp.doc(tags=["members"], summary="Import a CSV (the body, text/csv): ?preview=true checks each row and writes "
        "nothing; ?preview=false imports the valid rows (all_valid=true: only if every row is)",
        responses={200: "the rows, each ok or with its error"})
def import_members(group_id: int, query: dict[str, Any]) -> dict[str, Any]:
    session, user, data = db.session(), current_user(), request.get_data(cache=False)
    if query["preview"]:
        checked = csv_import.preview(session, user, group_id, data)
        return _import_view(None, None, checked)
    result = csv_import.commit_import(session, user, group_id, data, all_valid=query["all_valid"])
    session.commit()
    return _import_view(result.imported, result.consent_recorded, result.preview)


def _import_view(imported: int | None, recorded: int | None, checked: csv_import.Preview) -> dict[str, Any]:
    rows = [{"row": r.row, "ok": r.ok, "message": r.message, "number": phone.mask(r.number) if r.number else None,
             "display_name": r.display_name, "language": r.language, "status": r.status, "consent": r.consent}
            for r in checked.rows]
    return {"imported": imported, "consent_recorded": recorded, "valid": checked.valid, "errors": checked.errors,
            "columns": list(checked.columns), "rows": rows}


@bp.get("/groups/<int:group_id>/members.csv")
@bp.auth_required(auth)
@bp.doc(tags=["members"], summary="The group's members as CSV (full numbers: audited)",
        responses=_CSV)
def export_members(group_id: int) -> Response:
    session = db.session()
    text = csv_export.export_csv(session, current_user(), group_id)
    session.commit()
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="members-group-{group_id}.csv"', "Cache-Control": "no-store"})


@bp.post("/numbers/data-export")
@bp.auth_required(auth)
@bp.input(NumberIn, arg_name="data")
@bp.doc(tags=["members"], summary="Everything telline holds about one number (admins; audited)",
        responses={200: "JSON: member rows, memberships, consent ledger, texts, calls"})
def data_export(data: dict[str, Any]) -> Response:
    session = db.session()
    exported = erasure.data_export(session, current_user(), data["number"], region=data["region"])
    session.commit()
    answer = jsonify(exported)
    answer.headers["Cache-Control"] = "no-store"
    return answer


@bp.post("/numbers/erase")
@bp.auth_required(auth)
@bp.input(NumberIn, arg_name="data")
@bp.output(ErasureOut)
@bp.doc(tags=["members"], summary="Erase one number's personal data; the opt-out ledger is kept (admins; audited)")
def erase(data: dict[str, Any]) -> dict[str, Any]:
    session = db.session()
    report = erasure.erase(session, current_user(), data["number"], region=data["region"])
    session.commit()
    return dataclasses.asdict(report)


@bp.errorhandler(csv_import.ImportRejected)
def _rejected(error: csv_import.ImportRejected) -> Response:
    db.session().rollback()
    rows = {str(r.row): [r.message] for r in error.preview.rows if not r.ok}
    return errors.response(422, str(error), rows)


@bp.errorhandler(csv_import.ImportConflict)
def _conflict(error: csv_import.ImportConflict) -> Response:
    db.session().rollback()
    return errors.response(409, str(error))
