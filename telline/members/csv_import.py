"""Members from a CSV file: a preview first (each row ok, or the sentence saying what is wrong with
it), then the import — the valid rows, all in one transaction, or nothing at all if the caller asks
for a file without errors. Nothing is ever half imported.

The file: UTF-8 (a spreadsheet's "CSV UTF-8"), comma-, semicolon- or tab-separated, a header row
naming the columns (telline.members.columns; phone is the only one required), at most MAX_BYTES and
MAX_ROWS rows. The columns the export writes are accepted, so an export reads back.

Consent is recorded only where the file says how and when it was given: consent=yes with
consent_source and consent_date. A yes without them imports the member with no consent recorded (the
row says so); one of the two without the other is an error. An import never records consent over a
number's opt-out (records.may_record_opt_in).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline.accounts import access, audit
from telline.members import records
from telline.members.columns import COLUMNS, NO, YES, column_name
from telline.members.records import GivenConsent, InvalidMember
from telline.models import Base, ConsentAction, ConsentEvent, Group, Member, Membership, MembershipStatus, User, utcnow
from telline.spreadsheet import as_written

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 20_000
_CHUNK = 500  # numbers per IN (...) when looking up what telline knows of them
_STATUSES: dict[str, MembershipStatus] = {"": "active", "active": "active", "left": "left",
                                          "deactivated": "left", "pending": "pending"}

ConsentPlan = Literal["record", "not_recorded", "opted_out", "none"]


class ImportFileError(ValueError):
    """The file as a whole cannot be read (too big, not UTF-8, no phone column…); str() says why."""


class ImportRejected(ValueError):
    """The caller asked for a file without errors and this one has some: nothing was imported."""

    def __init__(self, preview: Preview):
        self.preview = preview
        errors = preview.errors
        super().__init__(f"{errors} row{'s' if errors != 1 else ''} of the file "
                         f"{'have errors' if errors != 1 else 'has an error'}: nothing was imported.")


class ImportConflict(RuntimeError):
    """The members changed while the file was imported (someone added one of its numbers): nothing
    was imported."""


@dataclasses.dataclass(frozen=True)
class RowResult:
    row: int  # as the spreadsheet numbers it: the header is row 1
    ok: bool
    message: str  # an error: what is wrong, in sentences; ok: a note for the coordinator, or ""
    number: str | None  # E.164 when it could be read
    display_name: str = ""
    language: str | None = None
    timezone: str | None = None
    status: MembershipStatus = "active"
    consent: ConsentPlan = "none"
    consent_given: GivenConsent | None = None


@dataclasses.dataclass(frozen=True)
class Preview:
    rows: tuple[RowResult, ...]
    columns: tuple[str, ...]  # the file's columns, as telline named them

    @property
    def errors(self) -> int:
        return sum(not r.ok for r in self.rows)

    @property
    def valid(self) -> int:
        return sum(r.ok for r in self.rows)


@dataclasses.dataclass(frozen=True)
class ImportResult:
    imported: int
    consent_recorded: int
    preview: Preview  # what was checked, row by row: the rows not imported are its errors


def preview(session: Session, user: User, group_id: int, data: bytes | str) -> Preview:
    """What importing this file would do, row by row; writes nothing."""
    group = access.require_group(session, user, group_id)
    return _check(session, group, data)[0]


def commit_import(session: Session, user: User, group_id: int, data: bytes | str, *,
                  all_valid: bool = False) -> ImportResult:
    """Import the file's valid rows (all_valid: only if every row is valid, else ImportRejected and
    nothing written), checked again now, in one savepoint: all of them or, on any failure, none.
    The caller commits (with the audit row written here)."""
    group = access.require_group(session, user, group_id)
    checked, known = _check(session, group, data)
    if all_valid and checked.errors:
        raise ImportRejected(checked)
    rows = [r for r in checked.rows if r.ok]
    try:
        with session.begin_nested():
            recorded = _write(session, group, rows, known)
    except sa.exc.IntegrityError:
        raise ImportConflict("Some of these numbers were added to telline while the file was being imported; "
                             "nothing was imported: preview the file again.") from None
    audit.record(session, user, "members.import", group_id=group.id,
                 detail={"rows": len(rows), "errors": checked.errors, "count": recorded})
    return ImportResult(len(rows), recorded, checked)


# --- reading the file ------------------------------------------------------------------------------
def _text(data: bytes | str) -> str:
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise ImportFileError(f"The file is {size / 1024 / 1024:.1f} MB; an import takes at most "
                              f"{MAX_BYTES // 1024 // 1024} MB: split it into smaller files.")
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ImportFileError(f"The file is not UTF-8 text (line {line} has a byte UTF-8 does not use): in the "
                              "spreadsheet, save it as “CSV UTF-8” and try again.") from None


def _delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=header.count)  # a comma when the header has none of them


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) of each non-empty record; the header is row 1."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    row = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFileError(f"Row {row + 1} cannot be read as CSV ({exc}); check its quotes.") from None
        row += 1
        if any(c.strip() for c in cells):
            yield row, cells


def _header(cells: Sequence[str]) -> tuple[str, ...]:
    names = tuple(column_name(c) for c in cells)
    unknown = [c.strip() for c, n in zip(cells, names, strict=True) if n not in COLUMNS]
    if unknown:
        raise ImportFileError(f"Unknown column “{unknown[0]}”: the first row names the columns, among "
                              f"{', '.join(COLUMNS)}.")
    twice = [n for n in names if names.count(n) > 1]
    if twice:
        raise ImportFileError(f"The column “{twice[0]}” appears twice in the first row.")
    if "phone" not in names:
        raise ImportFileError("The file has no phone column: the first row names the columns, and one of them "
                              "is phone.")
    return names


@dataclasses.dataclass
class _Parsed:
    row: int
    errors: list[str]
    number: str | None = None
    fields: dict[str, object] = dataclasses.field(default_factory=dict)
    wants_consent: bool = False
    given: GivenConsent | None = None


def _parse_row(group: Group, row: int, columns: tuple[str, ...], cells: list[str]) -> _Parsed:
    parsed = _Parsed(row, [])
    if len(cells) > len(columns):
        parsed.errors.append(f"The row has {len(cells)} cells but the first row names {len(columns)} columns.")
        return parsed
    values = dict(zip(columns, [as_written(c).strip() for c in cells] + [""] * (len(columns) - len(cells)),
                      strict=True))
    checks: tuple[tuple[str, Callable[[str], object], str], ...] = (
        ("number", lambda text: records.checked_number(text, group), "phone"),
        ("display_name", records.checked_name, "name"), ("language", records.checked_language, "language"),
        ("timezone", records.checked_zone, "timezone"))
    for field, check, column in checks:
        try:
            value = check(values.get(column, ""))
        except InvalidMember as exc:
            parsed.errors.append(str(exc))
            continue
        if field == "number":
            parsed.number = str(value)
        else:
            parsed.fields[field] = value
    status = values.get("status", "").lower()
    if status in _STATUSES:
        parsed.fields["status"] = _STATUSES[status]
    else:
        parsed.errors.append(f"The status is active, left or pending (or empty for active), not “{values['status']}”.")
    _parse_consent(group, values, parsed)
    return parsed


def _parse_consent(group: Group, values: dict[str, str], parsed: _Parsed) -> None:
    said, how, on = values.get("consent", ""), values.get("consent_source", ""), values.get("consent_date", "")
    if said.lower() not in YES | NO | {""}:
        parsed.errors.append(f"consent is yes, no or empty, not “{said}”.")
        return
    if bool(how) != bool(on):
        parsed.errors.append("consent_source and consent_date go together: give both (how and when the member "
                             "said yes), or neither.")
        return
    if how and said.lower() not in YES:
        parsed.errors.append("consent_source and consent_date say how consent was given, but consent is not “yes”.")
        return
    parsed.wants_consent = said.lower() in YES
    if not how:
        return
    try:
        day = dt.date.fromisoformat(on)
    except ValueError:
        parsed.errors.append(f"consent_date “{on}” is not a date written like 2026-05-12 (year-month-day).")
        return
    try:
        parsed.given = records.checked_consent(GivenConsent(how, day), group)
    except InvalidMember as exc:
        parsed.errors.append(str(exc))


# --- what telline knows of the numbers -------------------------------------------------------------
def _known(session: Session, group_id: int,
           numbers: list[str]) -> tuple[dict[str, tuple[int, MembershipStatus | None]], dict[str, ConsentAction]]:
    """For the numbers telline knows: their member id and membership of the group; their latest consent."""
    members: dict[str, tuple[int, MembershipStatus | None]] = {}
    latest: dict[str, ConsentAction] = {}
    for i in range(0, len(numbers), _CHUNK):
        chunk = numbers[i:i + _CHUNK]
        for number, member_id, status in session.execute(
                sa.select(Member.phone, Member.id, Membership.status)
                .outerjoin(Membership, (Membership.member_id == Member.id) & (Membership.group_id == group_id))
                .where(Member.phone.in_(chunk))):
            members[number] = (member_id, status)
        for number, action in session.execute(
                sa.select(ConsentEvent.phone, ConsentEvent.action)
                .where(ConsentEvent.phone.in_(chunk), ConsentEvent.channel == "sms").order_by(ConsentEvent.id)):
            latest[number] = action  # in id order: the last one written stays
    return members, latest


def _check(session: Session, group: Group, data: bytes | str) -> tuple[Preview, dict[str, int]]:
    """The preview, and the ids of the members telline knows already among the valid rows' numbers
    (kept from the preview itself: a coordinator is not told that a number is known elsewhere)."""
    found = _records(_text(data))
    first = next(found, None)
    if first is None:
        raise ImportFileError("The file is empty: its first row names the columns (phone, name, …).")
    columns = _header(first[1])
    parsed: list[_Parsed] = []
    for row, cells in found:
        if len(parsed) == MAX_ROWS:
            raise ImportFileError(f"The file has more than {MAX_ROWS:,} members; an import takes at most "
                                  f"{MAX_ROWS:,}: split it into smaller files.")
        parsed.append(_parse_row(group, row, columns, cells))
    if not parsed:
        raise ImportFileError("The file has its header row but no member under it.")
    members, latest = _known(session, group.id, sorted({p.number for p in parsed if p.number}))
    seen: dict[str, int] = {}
    results = []
    known_ids: dict[str, int] = {}
    for p in parsed:
        known = members.get(p.number) if p.number else None
        if p.number and p.number in seen:
            p.errors.append(f"The same number as row {seen[p.number]}.")
        elif p.number:
            seen[p.number] = p.row
            if known is not None:
                reason = records.already_member(known[0], known[1])
                if reason:
                    p.errors.append(reason)
        if p.errors:
            results.append(RowResult(p.row, False, " ".join(p.errors), p.number))
            continue
        assert p.number is not None  # no error: the number was read
        plan, note = _consent_plan(p, latest.get(p.number))
        results.append(RowResult(p.row, True, note, p.number, consent=plan, consent_given=p.given,
                                 **p.fields))  # type: ignore[arg-type]
        if known:
            known_ids[p.number] = known[0]
    return Preview(tuple(results), columns), known_ids


def _consent_plan(p: _Parsed, latest: ConsentAction | None) -> tuple[ConsentPlan, str]:
    if not p.wants_consent:
        return "none", ""
    if p.given is None:
        return "not_recorded", ("Consent not recorded: the file does not say how and when it was given "
                                "(consent_source and consent_date).")
    if not records.may_record_opt_in(latest):
        return "opted_out", ("Consent not recorded: this number opted out (STOP), and only the member can "
                             "opt back in, by texting START.")
    return "record", ""


# --- writing ---------------------------------------------------------------------------------------
def _write(session: Session, group: Group, rows: list[RowResult], known: dict[str, int]) -> int:
    """The rows' members, memberships and consents, as few statements as the rows allow."""
    now = utcnow()
    new = [r for r in rows if r.number not in known]
    ids: dict[str | None, int] = {number: member_id for number, member_id in known.items()}
    if new:
        # A plain executemany, then the ids by number: INSERT … RETURNING for thousands of rows costs
        # SQLAlchemy 2.1 time quadratic in the rows (it splices each batch's result into the last).
        session.execute(_table_insert(Member), [
            dict(phone=r.number, display_name=r.display_name, language=r.language, timezone=r.timezone,
                 preferences={}, sms_status="ok", sms_status_detail="", created_at=now) for r in new])
        numbers = [r.number for r in new]
        for i in range(0, len(numbers), _CHUNK):
            ids.update({number: member_id for number, member_id in session.execute(
                sa.select(Member.phone, Member.id).where(Member.phone.in_(numbers[i:i + _CHUNK])))})
    for r in rows:
        member_id = known.get(r.number or "")
        if member_id is not None:  # known to telline from another group: given fields updated
            records.apply_fields(session.get_one(Member, member_id), display_name=r.display_name,
                                 language=r.language, timezone=r.timezone)
    session.execute(_table_insert(Membership), [dict(member_id=ids[r.number], group_id=group.id, status=r.status,
                                                 joined_at=now) for r in rows])
    consents = [r for r in rows if r.consent == "record" and r.consent_given is not None]
    if consents:
        session.execute(_table_insert(ConsentEvent), [
            dict(phone=r.number, channel="sms", action="opt_in", source="import", group_id=group.id,
                 detail=r.consent_given.how, given_on=r.consent_given.on, created_at=now)
            for r in consents if r.consent_given is not None])
    session.flush()
    return len(consents)



def _table_insert(model: type[Base]) -> sa.Insert:
    """A Core INSERT into the model's table: one executemany for all the rows. (The ORM's bulk insert
    sends a statement per run of rows whose None-valued columns differ: thousands for a file with
    some languages given and some not.)"""
    return sa.insert(model.__table__)  # type: ignore[arg-type]
