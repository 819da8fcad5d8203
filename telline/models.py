"""The tables. Every phone number column holds E.164 (see telline.phone).

Times are stored as UTC and come back timezone-aware on every backend.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Literal, get_args

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

# What the string columns below may hold: plain strings in the database, Literals for mypy.
Direction = Literal["inbound", "outbound"]
# Ours (received, pending, deferred, retrying, submitting, refused), then Twilio's MessageStatus values.
MessageStatus = Literal["received", "pending", "deferred", "retrying", "submitting", "refused", "accepted",
                        "scheduled", "queued", "sending", "sent", "failed", "undelivered", "canceled",
                        "delivered", "read"]
MessageKind = Literal["message", "reply", "opt_out_confirmation", "broadcast", "reminder", "host_alert",
                      "dialout_missed", "meeting_notice"]
Channel = Literal["sms", "voice"]
ConsentAction = Literal["opt_in", "opt_out"]
# erasure: the opt-out telline adds when it erases a number's data (telline.members.erasure).
ConsentSource = Literal["keyword", "web", "import", "carrier", "advanced_opt_out", "voice_menu", "erasure"]
MembershipStatus = Literal["pending", "active", "left"]
NumberStatus = Literal["ok", "invalid", "landline", "unreachable"]  # can this number get texts?
# Statuses that stop every text to the number (unreachable is worth another try): one rule for the
# broadcast selection (SQL), the batch path and a single send (Python).
UNTEXTABLE: tuple[NumberStatus, ...] = ("invalid", "landline")
Role = Literal["member", "host"]  # in a meeting
InboxStatus = Literal["open", "done"]
UserRole = Literal["admin", "coordinator"]
ReminderState = Literal["pending", "sending", "sent", "cancelled"]
RateUnit = Literal["segments", "messages"]
RATE_UNITS: tuple[RateUnit, ...] = get_args(RateUnit)
Encoding = Literal["GSM-7", "UCS-2"]
QueueName = Literal["urgent", "default", "bulk"]  # telline.job_queues: a task's RQ queue
# What a task's job takes (telline.tasks.enqueue_after_commit): ids and short strings, or a batch of ids.
JobArg = int | str | bool | None | list[int]
# Days a text's body is kept (telline.members.retention), unless a group says otherwise.
DEFAULT_RETENTION_DAYS = 180


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out — SQLite included."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


Phone = sa.String(16)  # E.164: '+' and at most 15 digits

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    language: Mapped[str] = mapped_column(sa.String(8), default="en")  # BCP 47 primary tag: en, fr
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")  # IANA name, checked by zoneinfo
    # Region used to read numbers written without a country code (ISO 3166: GB, FR, US).
    default_region: Mapped[str] = mapped_column(sa.String(2), default="US")
    # Message bodies older than this are blanked by the retention job (the rows and their status stay).
    message_retention_days: Mapped[int] = mapped_column(default=DEFAULT_RETENTION_DAYS)
    # What members text after JOIN (upper-case letters and digits); None: not joinable by text.
    text_code: Mapped[str | None] = mapped_column(sa.String(12), unique=True)
    # Double opt-in: JOIN asks "reply YES"; False joins at once (the JOIN text is the consent).
    join_needs_confirmation: Mapped[bool] = mapped_column(default=True)
    # No ordinary texts between these local times (member's zone, else the group's); urgent ones go.
    quiet_start: Mapped[dt.time] = mapped_column(sa.Time, default=dt.time(21, 0))
    quiet_end: Mapped[dt.time] = mapped_column(sa.Time, default=dt.time(8, 0))
    # Told in HELP and in every acknowledgement: who to call in an emergency.
    crisis_resource: Mapped[str] = mapped_column(sa.String(300), default="")
    # How to reach a person (a coordinator's phone or e-mail), told in HELP.
    coordinator_contact: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    lines: Mapped[list[Line]] = relationship(back_populates="group")


class Line(Base):
    """A Twilio number a group is reached on (voice and/or SMS)."""

    __tablename__ = "lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    phone_number: Mapped[str] = mapped_column(Phone, unique=True)
    twilio_sid: Mapped[str | None] = mapped_column(sa.String(34))  # PN…, when known
    label: Mapped[str] = mapped_column(sa.String(80), default="")
    # Twilio's throughput for this sender: 1/s long code, 3/s toll-free, 100/s short code…
    sms_rate: Mapped[float] = mapped_column(default=1.0)
    sms_rate_unit: Mapped[RateUnit] = mapped_column(sa.String(8), default="segments")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    group: Mapped[Group] = relationship(back_populates="lines")


class Member(Base):
    """A person who calls or texts. Often a first name or a pseudonym."""

    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(sa.String(80), default="")
    phone: Mapped[str] = mapped_column(Phone, unique=True)
    language: Mapped[str | None] = mapped_column(sa.String(8))  # None: the group's
    timezone: Mapped[str | None] = mapped_column(sa.String(64))  # None: the group's
    preferences: Mapped[dict[str, object]] = mapped_column(sa.JSON, default=dict)
    # ok | invalid (not a number Twilio can text) | landline | unreachable — set from send errors.
    sms_status: Mapped[NumberStatus] = mapped_column(sa.String(12), default="ok")
    sms_status_detail: Mapped[str] = mapped_column(sa.String(120), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="member")


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("member_id", "group_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("members.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    status: Mapped[MembershipStatus] = mapped_column(sa.String(16), default="active")
    joined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship(back_populates="memberships")
    group: Mapped[Group] = relationship()


class User(Base):
    """Someone who signs in to the console or calls the API: an admin (every group, manages users)
    or a coordinator (the groups in user_groups). The password hash is argon2 (telline.accounts)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)  # lower-cased
    display_name: Mapped[str] = mapped_column(sa.String(80))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[UserRole] = mapped_column(sa.String(12), default="coordinator")
    language: Mapped[str] = mapped_column(sa.String(8), default="en")
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")  # IANA
    phone: Mapped[str | None] = mapped_column(Phone)  # for alerts and the host's texts
    active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserGroup(Base):
    """A group a coordinator is given (admins need none: they have every group)."""

    __tablename__ = "user_groups"
    __table_args__ = (sa.UniqueConstraint("user_id", "group_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True)


class ApiToken(Base):
    """A user's key to /api/v1. Shown once; only its SHA-256 is kept. It can do what its user can."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(80), default="")
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)  # hex SHA-256 of the token
    prefix: Mapped[str] = mapped_column(sa.String(12))  # the token's first characters, to tell tokens apart
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """What a user did (muted a caller, changed a series, exported members, read the inbox).
    Append-only, like the consent ledger; never a message body, a member's name or number:
    targets are named by type and id."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_group_id_id", "group_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor: Mapped[str] = mapped_column(sa.String(254))  # the user's e-mail then (kept if the user goes)
    action: Mapped[str] = mapped_column(sa.String(48))  # "series.update", "participant.mute", "members.export"
    group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("groups.id", ondelete="SET NULL"))
    target_type: Mapped[str | None] = mapped_column(sa.String(32))
    target_id: Mapped[int | None]
    detail: Mapped[dict[str, object]] = mapped_column(sa.JSON, default=dict)  # fields changed, counts
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ConsentEvent(Base):
    """Append-only ledger: the latest event for a number (and channel) is its consent.

    Keyed by phone number, not member: a number that never joined can still opt out.
    Rows are never updated or deleted: `_ledger_is_append_only` refuses it at flush.
    """

    __tablename__ = "consent_events"
    __table_args__ = (sa.Index("ix_consent_events_phone_channel_id", "phone", "channel", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(Phone)
    channel: Mapped[Channel] = mapped_column(sa.String(8), default="sms")
    action: Mapped[ConsentAction] = mapped_column(sa.String(8))
    # keyword | web | import | carrier (a 21610 from Twilio) | advanced_opt_out | voice_menu | erasure
    source: Mapped[ConsentSource] = mapped_column(sa.String(24))
    group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("groups.id", ondelete="SET NULL"))
    detail: Mapped[str] = mapped_column(sa.String(200), default="")
    # When the consent was given, as its record says (a CSV's consent_date); None: at created_at.
    given_on: Mapped[dt.date | None] = mapped_column(sa.Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    # The retention purge (telline.members.retention) looks for old texts that still hold a body.
    __table_args__ = (sa.Index("ix_messages_created_at_with_body", "created_at",
                               postgresql_where=sa.text("body <> ''"), sqlite_where=sa.text("body <> ''")),)
    id: Mapped[int] = mapped_column(primary_key=True)
    direction: Mapped[Direction] = mapped_column(sa.String(8))
    line_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lines.id", ondelete="SET NULL"), index=True)
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("members.id", ondelete="SET NULL"), index=True)
    from_number: Mapped[str | None] = mapped_column(Phone)  # None: anonymous or unparseable sender
    to_number: Mapped[str | None] = mapped_column(Phone)
    body: Mapped[str] = mapped_column(sa.Text, default="")
    num_media: Mapped[int] = mapped_column(default=0)
    status: Mapped[MessageStatus] = mapped_column(sa.String(16))  # inbound: received
    twilio_sid: Mapped[str | None] = mapped_column(sa.String(34), unique=True)
    error_code: Mapped[int | None]
    error_message: Mapped[str | None] = mapped_column(sa.String(255))
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(128), unique=True)
    urgent: Mapped[bool] = mapped_column(default=False)
    # What it is, for the send rules: reply | opt_out_confirmation | broadcast | reminder | …
    kind: Mapped[MessageKind] = mapped_column(sa.String(24), default="message")
    broadcast_id: Mapped[int | None] = mapped_column(sa.ForeignKey("broadcasts.id", ondelete="SET NULL"),
                                                     index=True)
    encoding: Mapped[Encoding] = mapped_column(sa.String(8), default="GSM-7")
    segments: Mapped[int] = mapped_column(default=1)
    attempts: Mapped[int] = mapped_column(default=0)
    send_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # deferred by quiet hours
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # handed to Twilio
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class MessageEvent(Base):
    """Every status callback, as it came. The row's status is the furthest one seen:
    a callback that beats the send job to the SID is kept here and applied then."""

    __tablename__ = "message_events"
    __table_args__ = (sa.UniqueConstraint("twilio_sid", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    twilio_sid: Mapped[str] = mapped_column(sa.String(34), index=True)
    status: Mapped[MessageStatus] = mapped_column(sa.String(16))
    error_code: Mapped[int | None]
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Broadcast(Base):
    """A coordinator's text to every opted-in member of a group."""

    __tablename__ = "broadcasts"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(sa.Text)
    requested_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(128), unique=True)
    recipients: Mapped[int | None]  # known once fanned out
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboxItem(Base):
    """A text no feature claimed: a coordinator should read it."""

    __tablename__ = "inbox_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(sa.ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("groups.id", ondelete="SET NULL"), index=True)
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("members.id", ondelete="SET NULL"))
    status: Mapped[InboxStatus] = mapped_column(sa.String(8), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MeetingSeries(Base):
    """A recurring phone meeting: an RFC 5545 RRULE in the group's wall-clock time."""

    __tablename__ = "meeting_series"
    __table_args__ = (sa.UniqueConstraint("line_id", "access_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    line_id: Mapped[int] = mapped_column(sa.ForeignKey("lines.id", ondelete="CASCADE"))  # dial-in
    title: Mapped[str] = mapped_column(sa.String(120))  # for coordinators; members hear the group
    # IANA zone the rule is computed in ("Tuesdays 19:00" stays 19:00 across DST): set from the group's.
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    first_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # DTSTART
    rrule: Mapped[str] = mapped_column(sa.String(255), default="FREQ=WEEKLY")
    duration_minutes: Mapped[int] = mapped_column(default=60)
    access_code: Mapped[str] = mapped_column(sa.String(12))
    host_pin: Mapped[str | None] = mapped_column(sa.String(12))  # entered instead of the code: joins as host
    active: Mapped[bool] = mapped_column(default=True)
    host_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    # Minutes before each meeting that opted-in members get a reminder (telline.scheduling.reminders).
    reminder_offsets: Mapped[list[int]] = mapped_column(sa.JSON, default=lambda: [24 * 60, 15])
    # How far ahead this series' reminder rows are written; None: from now (new or edited series).
    reminders_planned_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # --- how the bridge behaves (members' privacy first: the options are off by default)
    join_early_minutes: Mapped[int] = mapped_column(default=10)
    max_participants: Mapped[int] = mapped_column(default=40)  # Twilio allows 2–250
    caller_id_joins: Mapped[bool] = mapped_column(default=False)  # a known member's number skips the code
    host_leaving_ends: Mapped[bool] = mapped_column(default=True)
    announce_entries: Mapped[bool] = mapped_column(default=False)  # a tone when someone joins or leaves
    record_names: Mapped[bool] = mapped_column(default=False)  # callers say their first name, played on entry
    record: Mapped[bool] = mapped_column(default=False)  # joiners are told first
    wait_url: Mapped[str | None] = mapped_column(sa.String(500))  # hold music/message; None: Twilio's
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    group: Mapped[Group] = relationship()
    line: Mapped[Line] = relationship()


class OccurrenceStatus(enum.StrEnum):
    """Where one meeting of a series stands. A conference emptying does not end the meeting: only
    an explicit end does (or, once the slot is over, the last conference ending)."""

    SCHEDULED = "scheduled"  # no conference running now: not started yet, or between two conferences
    LIVE = "live"  # a conference is running, started by a host
    ENDED = "ended"  # a host or coordinator ended it (a host may restart it in its slot), or its slot is over
    CANCELLED = "cancelled"  # a coordinator cancelled it: callers hear the next meeting


class _OccurrenceStatusColumn(sa.TypeDecorator[OccurrenceStatus]):
    """A plain string in the database and to the driver, the enum in the code. (Handed a StrEnum as
    a parameter, psycopg looks for its dumper again each time: a tenth of a millisecond per
    statement on the join path, measured with tests/bench/profile_join_path.py.)"""

    impl = sa.String(12)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else OccurrenceStatus(value).value

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> OccurrenceStatus | None:
        return None if value is None else OccurrenceStatus(value)


class MeetingOccurrence(Base):
    """One meeting of a series: its conference(s), its state, its roster and attendance."""

    __tablename__ = "meeting_occurrences"
    __table_args__ = (sa.UniqueConstraint("series_id", "original_start"),
                      sa.Index("ix_meeting_occurrences_series_id_starts_at", "series_id", "starts_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(sa.ForeignKey("meeting_series.id", ondelete="CASCADE"), index=True)
    # Where the series' rule puts it (its RECURRENCE-ID), and where it is: they differ once moved.
    original_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[OccurrenceStatus] = mapped_column(_OccurrenceStatusColumn(), default=OccurrenceStatus.SCHEDULED)
    # Opaque: no group title, no names, no numbers (conference names are visible account-wide).
    # Every conference of the meeting has this FriendlyName; Twilio gives each a new ConferenceSid.
    conference_name: Mapped[str] = mapped_column(sa.String(40), unique=True)
    conference_sid: Mapped[str | None] = mapped_column(sa.String(34), unique=True)  # the one running now
    locked: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    series: Mapped[MeetingSeries] = relationship()

    def status_at(self, now: dt.datetime) -> OccurrenceStatus:
        """Its status as a coordinator reads it at `now`: once its slot is over, a meeting with no
        conference running is over, whether or not anyone ended it (nobody ends one that emptied)."""
        if self.status == OccurrenceStatus.SCHEDULED and now >= self.ends_at:
            return OccurrenceStatus.ENDED
        return OccurrenceStatus(self.status)


class Reminder(Base):
    """One reminder of one meeting (series, the rule's start, minutes before): the row that makes it
    happen. Planned ahead by the scheduling tick, claimed when due (pending → sending → sent), its
    texts written with idempotency keys, so a restart never sends it twice nor skips it. A cancelled
    or moved meeting's pending reminders are cancelled or moved with it."""

    __tablename__ = "reminders"
    __table_args__ = (sa.UniqueConstraint("series_id", "original_start", "offset_minutes"),
                      sa.Index("ix_reminders_state_due_at", "state", "due_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(sa.ForeignKey("meeting_series.id", ondelete="CASCADE"))
    original_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # which meeting (its RECURRENCE-ID)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # when it is now (moved meetings)
    offset_minutes: Mapped[int]
    # The earliest moment a text of it may go (quiet hours bring some recipients' texts forward).
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    state: Mapped[ReminderState] = mapped_column(sa.String(10), default="pending")
    recipients: Mapped[int | None]  # known once sent
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarFeed(Base):
    """A group's private .ics URL. Only the token's SHA-256 is kept; revoking one and making another
    changes the URL."""

    __tablename__ = "calendar_feeds"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Conference(Base):
    """One Twilio conference of a meeting. A meeting may have several in its slot: a conference ends
    when its last caller leaves (or a host with "host leaving ends" does), and the next caller starts
    a new one under the same FriendlyName with a new ConferenceSid. Roster and attendance carry on
    across them (ConferenceParticipant rows belong to the meeting)."""

    __tablename__ = "conferences"
    sid: Mapped[str] = mapped_column(sa.String(34), primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(sa.ForeignKey("meeting_occurrences.id", ondelete="CASCADE"),
                                               index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(sa.String(64))  # Twilio's ReasonConferenceEnded


class Announcement(Base):
    """A sentence a host asked to be said to the room (fetched by Twilio through announce_url)."""

    __tablename__ = "announcements"
    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(sa.ForeignKey("meeting_occurrences.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(sa.String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Call(Base):
    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(primary_key=True)
    twilio_sid: Mapped[str] = mapped_column(sa.String(34), unique=True)
    direction: Mapped[Direction] = mapped_column(sa.String(16))
    line_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lines.id", ondelete="SET NULL"), index=True)
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("members.id", ondelete="SET NULL"), index=True)
    from_number: Mapped[str | None] = mapped_column(Phone)  # None: anonymous, blocked or client:
    to_number: Mapped[str | None] = mapped_column(Phone)
    status: Mapped[str] = mapped_column(sa.String(16))
    # The caller's way into a meeting, kept in the row (not in URLs): wrong codes, the meeting, the role.
    code_attempts: Mapped[int] = mapped_column(default=0)
    occurrence_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("meeting_occurrences.id", ondelete="SET NULL"), index=True)
    role: Mapped[Role | None] = mapped_column(sa.String(8))  # once admitted
    name_recording_url: Mapped[str | None] = mapped_column(sa.String(500))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CodeLockout(Base):
    """A caller, or a whole line, refused at the code prompt after too many wrong codes.

    The wrong codes are counted in Redis (telline.voice.lockout); the lock itself is this row,
    so the statement that seats a caller checks it in the same round trip, and operators keep
    a record of it. A hash of the caller's number, never the number."""

    __tablename__ = "code_lockouts"
    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(sa.ForeignKey("lines.id", ondelete="CASCADE"), index=True)
    caller_key: Mapped[str | None] = mapped_column(sa.String(20))  # None: everyone on the line
    until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConferenceParticipant(Base):
    """One call's stay in one conference, kept from the conference status callbacks."""

    __tablename__ = "conference_participants"
    __table_args__ = (sa.UniqueConstraint("conference_sid", "call_sid"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conference_sid: Mapped[str] = mapped_column(sa.String(34), index=True)
    call_sid: Mapped[str] = mapped_column(sa.String(34))
    occurrence_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("meeting_occurrences.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("members.id", ondelete="SET NULL"))
    role: Mapped[Role] = mapped_column(sa.String(8), default="member")
    muted: Mapped[bool] = mapped_column(default=False)
    on_hold: Mapped[bool] = mapped_column(default=False)
    hand_raised: Mapped[bool] = mapped_column(default=False)
    # Highest SequenceNumber applied: older callbacks arriving late are ignored.
    last_sequence: Mapped[int] = mapped_column(default=-1)
    joined_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Task(Base):
    """Work that must happen — a text to send, a member to dial, a caller to mute — kept as a row
    until it is done (telline.tasks). The RQ job only carries it out: it names this row's id, and
    the sweeper (telline.sweeper) sends a new one when Redis lost it. Deleted once done."""

    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    func: Mapped[str] = mapped_column(sa.String(120))  # "module:function", a @tasks.durable function
    args: Mapped[list[JobArg]] = mapped_column(sa.JSON)  # ids and short strings, as the job takes them
    queue: Mapped[QueueName] = mapped_column(sa.String(16))
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    retry: Mapped[list[int] | None] = mapped_column(sa.JSON)  # RQ Retry's intervals (seconds), one a retry
    timeout: Mapped[int | None]  # RQ's job timeout, seconds
    # Bumped each time the sweeper sends it again: the RQ job id is "task-<id>-<generation>", and a
    # job of an older generation does nothing (a late original never runs beside its replacement).
    generation: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def job_id(self) -> str:
        return job_id(self.id, self.generation)


def job_id(task_id: int, generation: int) -> str:
    return f"task-{task_id}-{generation}"


class WebhookKey(Base):
    """Natural keys of webhooks already handled: a retried webhook has one effect."""

    __tablename__ = "webhook_keys"
    key: Mapped[str] = mapped_column(sa.String(160), primary_key=True)  # e.g. "sms:SM…"
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AppendOnlyError(RuntimeError):
    pass


@event.listens_for(Session, "before_flush")
def _ledger_is_append_only(session: Session, _flush_context: object, _instances: object) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, ConsentEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyError("the consent ledger is append-only: add a new event instead")
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyError("the audit log is append-only")


# What a series' reminder rows are computed from: changing any of it (here or on one of its
# meetings' rows) clears the series' reminders_planned_until, so the next tick plans it again
# (telline.scheduling.reminders). One listener, whoever edits: the API, the CLI, edits.py, a test.
_PLANNED_FROM = {MeetingSeries: ("rrule", "first_start", "timezone", "reminder_offsets", "active"),
                 MeetingOccurrence: ("status", "starts_at"),
                 Group: ("timezone", "quiet_start", "quiet_end")}


@event.listens_for(Session, "before_flush")
def _replan_edited_series(session: Session, _flush_context: object, _instances: object) -> None:
    series_ids: set[int] = set()
    groups: set[int] = set()
    for obj in (*session.new, *session.dirty):
        fields = _PLANNED_FROM.get(type(obj))
        if fields is None or not (obj in session.new or _changed(obj, fields)):
            continue
        if isinstance(obj, MeetingSeries):
            obj.reminders_planned_until = None
        elif isinstance(obj, MeetingOccurrence):
            series_id = obj.series_id if obj.series_id is not None else getattr(obj.series, "id", None)
            if series_id is not None:
                series_ids.add(series_id)
        elif isinstance(obj, Group) and obj.id is not None:
            groups.add(obj.id)
    if series_ids or groups:
        session.execute(sa.update(MeetingSeries).where(sa.or_(MeetingSeries.id.in_(series_ids),
                                                              MeetingSeries.group_id.in_(groups)))
                        .values(reminders_planned_until=None).execution_options(synchronize_session="fetch"))


def _changed(obj: object, fields: tuple[str, ...]) -> bool:
    state = sa.inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in fields)
