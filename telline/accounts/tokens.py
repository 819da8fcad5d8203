"""API tokens: "tl_" and 43 URL-safe random characters, shown once; only the SHA-256 is kept.

SHA-256 (not argon2) is right here: the token has 256 bits of randomness, so nothing can be
guessed offline, and a fast hash lets every API request look its token up by an index.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from telline.models import ApiToken, User, utcnow

PREFIX = "tl_"
# last_used_at is written at most this often: not one write per request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class InvalidToken(ValueError):
    pass


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(session: Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    name = (name or "").strip()
    if len(name) > 80:
        raise InvalidToken("A token's name has at most 80 characters.")
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_digest(raw), prefix=raw[:10])
    session.add(token)
    session.flush()
    return token, raw


def user_for_token(session: Session, raw: str | None, now: dt.datetime | None = None) -> User | None:
    """The active user a token stands for, or None (unknown, revoked, or its user deactivated)."""
    if not raw or not raw.startswith(PREFIX) or len(raw) > 100:
        return None
    now = now or utcnow()
    row = session.execute(sa.select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                          .where(ApiToken.token_hash == _digest(raw))).first()
    if row is None:
        return None
    token, user = row
    if token.revoked_at is not None or not user.active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
        session.commit()
    return user


def tokens_of(session: Session, user_id: int) -> list[ApiToken]:
    return list(session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)))


def revoke_token(session: Session, token_id: int, *, user_id: int | None = None) -> ApiToken | None:
    """Revoke a token (only one of `user_id`'s when given). None: no such token (of theirs)."""
    token = session.get(ApiToken, token_id)
    if token is None or (user_id is not None and token.user_id != user_id):
        return None
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token
