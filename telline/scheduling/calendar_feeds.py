"""A group's private calendar URLs: a random token in the URL, only its SHA-256 in the database.
Revoking one kills its URL at once; a new one gives a new URL (the old one never comes back)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline.models import CalendarFeed, Group, utcnow


class InvalidFeed(ValueError):
    pass


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_feed(session: Session, group_id: int) -> tuple[CalendarFeed, str]:
    """A new feed for the group, and its raw token: shown once, never stored."""
    if session.get(Group, group_id) is None:
        raise InvalidFeed(f"there is no group {group_id}")
    token = secrets.token_urlsafe(32)  # 256 bits: not guessable
    row = CalendarFeed(group_id=group_id, token_hash=_hash(token))
    session.add(row)
    session.flush()
    return row, token


def revoke_feed(session: Session, feed_id: int, now: dt.datetime | None = None) -> CalendarFeed:
    row = session.get(CalendarFeed, feed_id)
    if row is None:
        raise InvalidFeed(f"there is no calendar feed {feed_id}")
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
    return row


def current_feeds(session: Session, group_id: int) -> list[CalendarFeed]:
    """The group's feeds that still answer, oldest first."""
    return list(session.scalars(sa.select(CalendarFeed).where(
        CalendarFeed.group_id == group_id, CalendarFeed.revoked_at.is_(None)).order_by(CalendarFeed.id)))


def group_of(session: Session, token: str) -> int | None:
    """The group whose live feed this token opens, or None (unknown and revoked alike)."""
    return session.scalar(sa.select(CalendarFeed.group_id).where(
        CalendarFeed.token_hash == _hash(token), CalendarFeed.revoked_at.is_(None)))


def path(token: str) -> str:
    return f"/calendar/{token}.ics"
