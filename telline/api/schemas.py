"""The shapes the API reads and writes (marshmallow, through APIFlask): the same classes validate
requests and make the OpenAPI document. Domain rules are not repeated here: a field's type and
size are checked here, what makes it valid (an RRULE, a code free on the line) by the services,
whose refusal comes back as a 422 with their sentence."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from apiflask.fields import AwareDateTime, Boolean, Date, Dict, Float, Integer, List, Nested, String
from apiflask.schemas import Schema as BaseSchema
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError, pre_load, validates_schema

from telline.accounts.users import ROLES
from telline.api.blueprint import MAX_ID
from telline.models import RATE_UNITS
from telline.scheduling.series import MAX_REMINDER_MINUTES, MAX_REMINDERS

Id = Integer(dump_only=True)
_LOCAL = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$"


class LocalDateTime(String):
    """A wall-clock time without a zone, "2026-12-01T19:00": in the series' time zone."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("metadata", {"example": "2026-12-01T19:00", "description": "local time, no zone",
                                       "pattern": _LOCAL})
        super().__init__(**kwargs)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else f"{value:%Y-%m-%dT%H:%M:%S}"

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.datetime:  # type: ignore[override]
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.fullmatch(_LOCAL, text):
            raise ValidationError("A local time looks like 2026-12-01T19:00 (no zone).")
        for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
            try:
                found = dt.datetime.strptime(text, fmt)
            except ValueError:
                continue
            _sane_year(found)
            return found
        raise ValidationError("A local time looks like 2026-12-01T19:00 (no zone), and must exist in the calendar.")


# What the API takes as a time: years 1970 to 9000. Beyond them a zone's offset, or a meeting's
# length, would leave what Python's datetime can hold (year 1 minus an hour).
YEARS = (1970, 9000)
_YEARS_SAID = f"A time between the years {YEARS[0]} and {YEARS[1]}."


def _sane_year(value: dt.date) -> None:
    if not YEARS[0] <= value.year <= YEARS[1]:
        raise ValidationError(_YEARS_SAID)


def Moment(**kwargs: Any) -> AwareDateTime:  # noqa: N802  (a field factory, read like a field class)
    return AwareDateTime(format="iso", validate=_sane_year, **kwargs)


def Day(**kwargs: Any) -> Date:  # noqa: N802
    return Date(validate=_sane_year, **kwargs)


class Schema(BaseSchema):
    """Every request schema: a NUL character in any string is refused (PostgreSQL cannot store one,
    and no person types it)."""

    @pre_load
    def _no_nul(self, data: Any, **_kwargs: Any) -> Any:
        if _has_nul(data):
            raise ValidationError("Text may not contain the NUL character (\\u0000).")
        return data


def _has_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 20:
        return False
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


# --- accounts -----------------------------------------------------------------------
class UserOut(Schema):
    id = Id
    email = String()
    display_name = String()
    role = String()
    language = String()
    timezone = String()
    phone = String(allow_none=True)
    active = Boolean()
    group_ids = List(Integer())
    last_login_at = Moment(allow_none=True)
    created_at = Moment()


class UserIn(Schema):
    email = String(required=True, validate=Length(1, 254))
    display_name = String(required=True, validate=Length(1, 80))
    password = String(required=True, load_only=True, validate=Length(1, 1024))
    role = String(required=True, validate=OneOf(ROLES))
    group_ids = List(Integer(validate=Range(1, MAX_ID)), load_default=list, validate=Length(max=1000))
    language = String(load_default="en", validate=Length(1, 8))
    timezone = String(load_default="UTC", validate=Length(1, 64))
    phone = String(load_default=None, allow_none=True, validate=Length(max=40))


class UserPatch(Schema):
    display_name = String(validate=Length(1, 80))
    role = String(validate=OneOf(ROLES))
    language = String(validate=Length(1, 8))
    timezone = String(validate=Length(1, 64))
    phone = String(allow_none=True, validate=Length(max=40), metadata={"description": "'' or null clears it"})
    password = String(load_only=True, validate=Length(1, 1024))
    group_ids = List(Integer(validate=Range(1, MAX_ID)), validate=Length(max=1000))
    active = Boolean(metadata={"description": "false deactivates (tokens stop working); true restores"})


class TokenOut(Schema):
    id = Id
    name = String()
    prefix = String()
    created_at = Moment()
    last_used_at = Moment(allow_none=True)
    revoked_at = Moment(allow_none=True)


class TokenCreated(TokenOut):
    token = String(metadata={"description": "shown once: only its SHA-256 is kept"})


class TokenIn(Schema):
    name = String(load_default="", validate=Length(max=80))


# --- groups and lines ----------------------------------------------------------------
class GroupOut(Schema):
    id = Id
    name = String()
    language = String()
    timezone = String()
    region = String(attribute="default_region")
    text_code = String(allow_none=True)
    join_needs_confirmation = Boolean()
    quiet_hours = String(metadata={"description": "21:00-08:00, or none"})
    crisis_resource = String()
    coordinator_contact = String()
    message_retention_days = Integer()
    created_at = Moment()


class GroupIn(Schema):
    name = String(required=True, validate=Length(1, 120))
    language = String(load_default="en", validate=Length(1, 8))
    timezone = String(load_default="UTC", validate=Length(1, 64))
    region = String(load_default="US", validate=Length(2, 2))


class GroupPatch(Schema):
    name = String(validate=Length(1, 120))
    language = String(validate=Length(1, 8))
    timezone = String(validate=Length(1, 64))
    region = String(validate=Length(2, 2))
    text_code = String(validate=Length(1, 40))
    join_needs_confirmation = Boolean()
    quiet_hours = String(validate=Length(1, 40))
    crisis_resource = String(validate=Length(max=300))
    coordinator_contact = String(validate=Length(max=200))


class LineOut(Schema):
    id = Id
    group_id = Integer()
    phone_number = String()
    label = String()
    sms_rate = Float()
    sms_rate_unit = String()
    created_at = Moment()


class LineIn(Schema):
    phone_number = String(required=True, validate=Length(1, 40))
    label = String(load_default="", validate=Length(max=80))


class LinePatch(Schema):
    label = String(validate=Length(max=80))
    sms_rate = Float(validate=Range(0.01, 1000), allow_nan=False)
    sms_rate_unit = String(validate=OneOf(RATE_UNITS))


# --- series and occurrences ------------------------------------------------------------
class _Bridge(Schema):
    join_early_minutes = Integer(validate=Range(0, 120))
    max_participants = Integer(validate=Range(2, 250))
    caller_id_joins = Boolean()
    host_leaving_ends = Boolean()
    announce_entries = Boolean()
    record = Boolean()
    wait_url = String(validate=Length(max=500), metadata={"description": "'' for Twilio's hold music"})


# The limits are the service's (checked_offsets): its sentence says them.
_Offsets = List(Integer(), metadata={"description": f"minutes before each meeting: at most {MAX_REMINDERS}, each 1 to "
                                                    f"{MAX_REMINDER_MINUTES}, no duplicates"})


class SeriesOut(_Bridge):
    id = Id
    group_id = Integer()
    line_id = Integer()
    title = String()
    timezone = String()
    first_start = Moment()
    first_start_local = LocalDateTime()
    rrule = String()
    duration_minutes = Integer()
    access_code = String()
    host_pin = String(allow_none=True)
    active = Boolean()
    host_user_id = Integer(allow_none=True)
    reminder_offsets = List(Integer())
    wait_url = String(allow_none=True)
    created_at = Moment()


class Overlap(Schema):
    series_id = Integer()
    first = Moment()


class SeriesCreated(SeriesOut):
    overlaps = List(Nested(Overlap), metadata={"description": "other series meeting on the line at the same "
                                                              "time: allowed (callers are told apart by code)"})


class SeriesIn(_Bridge):
    line_id = Integer(required=True, validate=Range(1, MAX_ID))
    title = String(load_default="", validate=Length(max=120))
    first_start_local = LocalDateTime(required=True)
    rrule = String(load_default="FREQ=WEEKLY", validate=Length(1, 255))
    duration_minutes = Integer(load_default=60, validate=Range(5, 24 * 60))
    timezone = String(load_default=None, allow_none=True, validate=Length(1, 64))
    access_code = String(load_default=None, allow_none=True, validate=Length(1, 12))
    host_pin = String(load_default=None, allow_none=True, validate=Length(1, 12))
    reminder_offsets = _Offsets
    host_user_id = Integer(load_default=None, allow_none=True, validate=Range(1, MAX_ID))


class SeriesPatch(_Bridge):
    title = String(validate=Length(1, 120))
    access_code = String(validate=Length(1, 12))
    host_pin = String(validate=Length(1, 12))
    reminder_offsets = _Offsets
    host_user_id = Integer(allow_none=True, validate=Range(1, MAX_ID))


class EditFrom(Schema):
    from_date = Day(required=True, metadata={"description": "the series' local date the change takes effect"})
    first_start_local = LocalDateTime(load_default=None, allow_none=True)
    rrule = String(load_default=None, allow_none=True, validate=Length(1, 255))
    duration_minutes = Integer(load_default=None, allow_none=True, validate=Range(5, 24 * 60))


class OccurrenceOut(Schema):
    series_id = Integer()
    title = String()
    original_start = Moment(metadata={"description": "where the rule puts it: what cancel and move take"})
    starts_at = Moment()
    ends_at = Moment()
    local_start = LocalDateTime()
    occurrence_id = Integer(allow_none=True, metadata={"description": "null: no row yet (nobody called)"})
    status = String()
    attended = Integer(allow_none=True)


class OccurrenceQuery(Schema):
    from_ = Moment(data_key="from", load_default=None, metadata={"description": "default: now"})
    to = Moment(load_default=None)
    limit = Integer(load_default=50, validate=Range(1, 200))
    after = String(load_default=None, validate=Length(max=60), metadata={"description": "`next` of the page before"})


class CancelIn(Schema):
    original_start = Moment(required=True)


class MoveIn(Schema):
    original_start = Moment(required=True)
    new_local_start = LocalDateTime(required=True)
    duration_minutes = Integer(load_default=None, allow_none=True, validate=Range(5, 24 * 60))


class AttendanceOut(Schema):
    shown_as = String(metadata={"description": "the member's chosen name, or Caller •••5678"})
    member_id = Integer(allow_none=True)
    role = String()
    minutes = Float()


class AttendanceList(Schema):
    occurrence_id = Integer()
    items = List(Nested(AttendanceOut))


# --- inbox, messages, audit, calendar ----------------------------------------------------
class MessageOut(Schema):
    id = Id
    direction = String()
    line_id = Integer(allow_none=True)
    member_id = Integer(allow_none=True)
    member_number = String(metadata={"description": "masked: •••5678"})
    body = String(allow_none=True, metadata={"description": "null unless the member is in this group"})
    status = String()
    kind = String()
    created_at = Moment()


class InboxOut(Schema):
    id = Id
    group_id = Integer(allow_none=True)
    member_id = Integer(allow_none=True)
    status = String()
    created_at = Moment()
    message = Nested(MessageOut)


class InboxQuery(Schema):
    status = String(load_default="open", validate=OneOf(["open", "done", "all"]))
    limit = Integer(load_default=50, validate=Range(1, 200))
    after = Integer(load_default=None, validate=Range(0, MAX_ID))


class InboxPatch(Schema):
    status = String(required=True, validate=OneOf(["open", "done"]))


class MessageQuery(Schema):
    from_ = Moment(data_key="from", load_default=None)
    to = Moment(load_default=None)
    member_id = Integer(load_default=None, validate=Range(1, MAX_ID))
    limit = Integer(load_default=50, validate=Range(1, 200))
    after = Integer(load_default=None, validate=Range(0, MAX_ID), metadata={"description": "newest first"})

    @validates_schema
    def _window(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("from_") and data.get("to") and data["from_"] >= data["to"]:
            raise ValidationError("from must be before to", "to")


class AuditOut(Schema):
    id = Id
    user_id = Integer(allow_none=True)
    actor = String()
    action = String()
    group_id = Integer(allow_none=True)
    target_type = String(allow_none=True)
    target_id = Integer(allow_none=True)
    detail = Dict(keys=String(), metadata={"description": "ids, counts, field names: never a body or a number"})
    created_at = Moment()


class AuditQuery(Schema):
    group_id = Integer(load_default=None, validate=Range(1, MAX_ID))
    limit = Integer(load_default=50, validate=Range(1, 200))
    after = Integer(load_default=None, validate=Range(0, MAX_ID), metadata={"description": "newest first"})


class FeedOut(Schema):
    id = Id
    group_id = Integer()
    created_at = Moment()
    revoked_at = Moment(allow_none=True)


class FeedCreated(FeedOut):
    url = String(metadata={"description": "shown once: only its token's SHA-256 is kept"})
