"""The tables. Every phone number column holds E.164 (see telline.phone).

Times are stored as UTC and come back timezone-aware on every backend.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(sa.TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out — SQLite included."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
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
    preferences: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="member")


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("member_id", "group_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("members.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="active")  # pending | active | left
    joined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship(back_populates="memberships")
    group: Mapped[Group] = relationship()


class Coordinator(Base):
    """A volunteer who signs in to the web pages. Password hashed by Werkzeug."""

    __tablename__ = "coordinators"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(80))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    phone: Mapped[str | None] = mapped_column(Phone)  # for alerts and the host's texts
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    roles: Mapped[list[CoordinatorRole]] = relationship(back_populates="coordinator")


class CoordinatorRole(Base):
    """admin (everything), coordinator (a group's schedule and members), host (runs meetings)."""

    __tablename__ = "coordinator_roles"
    __table_args__ = (sa.UniqueConstraint("coordinator_id", "group_id", "role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    coordinator_id: Mapped[int] = mapped_column(sa.ForeignKey("coordinators.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))  # None: all
    role: Mapped[str] = mapped_column(sa.String(16))

    coordinator: Mapped[Coordinator] = relationship(back_populates="roles")


class ConsentEvent(Base):
    """Append-only ledger: the latest event for a number (and channel) is its consent.

    Keyed by phone number, not member: a number that never joined can still opt out.
    Rows are never updated or deleted: `_ledger_is_append_only` refuses it at flush.
    """

    __tablename__ = "consent_events"
    __table_args__ = (sa.Index("ix_consent_events_phone_channel_id", "phone", "channel", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(Phone)
    channel: Mapped[str] = mapped_column(sa.String(8), default="sms")  # sms | voice
    action: Mapped[str] = mapped_column(sa.String(8))  # opt_in | opt_out
    # keyword | web | import | carrier (a 21610 from Twilio) | advanced_opt_out | voice_menu
    source: Mapped[str] = mapped_column(sa.String(24))
    group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("groups.id", ondelete="SET NULL"))
    detail: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    direction: Mapped[str] = mapped_column(sa.String(8))  # inbound | outbound
    line_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lines.id", ondelete="SET NULL"), index=True)
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("members.id", ondelete="SET NULL"), index=True)
    from_number: Mapped[str | None] = mapped_column(Phone)  # None: anonymous or unparseable sender
    to_number: Mapped[str | None] = mapped_column(Phone)
    body: Mapped[str] = mapped_column(sa.Text, default="")
    num_media: Mapped[int] = mapped_column(default=0)
    # outbound: pending | queued | sending | sent | delivered | undelivered | failed | refused | …
    status: Mapped[str] = mapped_column(sa.String(16))
    twilio_sid: Mapped[str | None] = mapped_column(sa.String(34), unique=True)
    error_code: Mapped[int | None]
    error_message: Mapped[str | None] = mapped_column(sa.String(255))
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(128), unique=True)
    urgent: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Call(Base):
    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(primary_key=True)
    twilio_sid: Mapped[str] = mapped_column(sa.String(34), unique=True)
    direction: Mapped[str] = mapped_column(sa.String(16))  # inbound | outbound
    line_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lines.id", ondelete="SET NULL"), index=True)
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("members.id", ondelete="SET NULL"), index=True)
    from_number: Mapped[str | None] = mapped_column(Phone)  # None: anonymous, blocked or client:
    to_number: Mapped[str | None] = mapped_column(Phone)
    status: Mapped[str] = mapped_column(sa.String(16))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ConferenceParticipant(Base):
    """One call's stay in one conference, kept from the conference status callbacks."""

    __tablename__ = "conference_participants"
    __table_args__ = (sa.UniqueConstraint("conference_sid", "call_sid"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conference_sid: Mapped[str] = mapped_column(sa.String(34), index=True)
    call_sid: Mapped[str] = mapped_column(sa.String(34))
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("members.id", ondelete="SET NULL"))
    role: Mapped[str] = mapped_column(sa.String(8), default="member")  # member | host
    muted: Mapped[bool] = mapped_column(default=False)
    on_hold: Mapped[bool] = mapped_column(default=False)
    hand_raised: Mapped[bool] = mapped_column(default=False)
    # Highest SequenceNumber applied: older callbacks arriving late are ignored.
    last_sequence: Mapped[int] = mapped_column(default=-1)
    joined_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WebhookKey(Base):
    """Natural keys of webhooks already handled: a retried webhook has one effect."""

    __tablename__ = "webhook_keys"
    key: Mapped[str] = mapped_column(sa.String(160), primary_key=True)  # e.g. "sms:SM…"
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AppendOnlyError(RuntimeError):
    pass


@event.listens_for(Session, "before_flush")
def _ledger_is_append_only(session, _flush_context, _instances):
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, ConsentEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyError("the consent ledger is append-only: add a new event instead")
