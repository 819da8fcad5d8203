"""Users: admins (every group, manage users) and coordinators (the groups they are given).

Passwords are hashed with argon2id through argon2-cffi's PasswordHasher: the current OWASP
recommendation, with its parameters kept in the hash so a change of them rehashes at next login.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from telline import phone as phone_module
from telline import zones
from telline.models import Group, User, UserGroup, UserRole, utcnow
from telline.texts import SAY_LANGUAGE

ROLES: tuple[UserRole, ...] = ("admin", "coordinator")
MIN_PASSWORD = 10
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so that answering "no such user" costs as long as
# a wrong password: the timing does not tell which e-mails have accounts.
_DUMMY_HASH = _hasher.hash("telline: no such user")


class InvalidUser(ValueError):
    """A field of a user is wrong; str() is one sentence saying which and why."""


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise InvalidUser(f"“{email}” is not an e-mail address.")
    return email


def _check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise InvalidUser(f"A password has at least {MIN_PASSWORD} characters.")
    return password


def _check_fields(session: Session, *, display_name: str, role: str, language: str, timezone: str,
                  phone: str | None) -> tuple[str, UserRole, str | None]:
    name = (display_name or "").strip()
    if not name or len(name) > 80:
        raise InvalidUser("A user needs a display name of 1 to 80 characters.")
    if role not in ROLES:
        raise InvalidUser(f"The role is admin or coordinator, not “{role}”.")
    if language not in SAY_LANGUAGE:
        raise InvalidUser(f"Language “{language}” is not available; choose one of {', '.join(SAY_LANGUAGE)}.")
    try:
        zones.zone(timezone)
    except zones.UnknownZone as exc:
        raise InvalidUser(str(exc)) from None
    e164 = None
    if phone:
        try:
            e164 = phone_module.to_e164(phone, None)
        except phone_module.InvalidPhoneNumber as exc:
            raise InvalidUser(str(exc)) from None
    return name, role, e164  # role checked against ROLES above


def create_user(session: Session, *, email: str, display_name: str, password: str, role: str,
                group_ids: Iterable[int] = (), language: str = "en", timezone: str = "UTC",
                phone: str | None = None) -> User:
    email = normalise_email(email)
    name, checked_role, e164 = _check_fields(session, display_name=display_name, role=role, language=language,
                                             timezone=timezone, phone=phone)
    _check_password(password)
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise InvalidUser(f"A user with the e-mail {email} already exists.")
    user = User(email=email, display_name=name, password_hash=_hasher.hash(password), role=checked_role,
                language=language, timezone=timezone, phone=e164)
    session.add(user)
    session.flush()
    set_groups(session, user, group_ids)
    return user


def update_user(session: Session, user: User, *, display_name: str | None = None, role: str | None = None,
                language: str | None = None, timezone: str | None = None, phone: str | None = None) -> list[str]:
    """Change the given fields (None leaves one as it is; phone "" clears it). Returns the fields changed."""
    name, checked_role, e164 = _check_fields(
        session, display_name=user.display_name if display_name is None else display_name,
        role=user.role if role is None else role, language=user.language if language is None else language,
        timezone=user.timezone if timezone is None else timezone,
        phone=user.phone if phone is None else phone)
    changed = []
    for field, value in (("display_name", name), ("role", checked_role), ("language", language or user.language),
                         ("timezone", timezone or user.timezone), ("phone", e164)):
        if getattr(user, field) != value:
            setattr(user, field, value)
            changed.append(field)
    session.flush()
    return changed


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None (wrong, unknown or deactivated alike)."""
    user = session.scalar(sa.select(User).where(User.email == (email or "").strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):  # argon2 parameters raised since it was hashed
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = _hasher.hash(_check_password(password))
    session.flush()


def set_groups(session: Session, user: User, group_ids: Iterable[int]) -> list[int]:
    """Give a user exactly these groups (an admin's are kept too, though admins see every group)."""
    wanted = sorted(set(group_ids))
    known = set(session.scalars(sa.select(Group.id).where(Group.id.in_(wanted))))
    missing = [g for g in wanted if g not in known]
    if missing:
        raise InvalidUser(f"There is no group {missing[0]}.")
    session.execute(sa.delete(UserGroup).where(UserGroup.user_id == user.id, UserGroup.group_id.not_in(wanted)))
    have = set(session.scalars(sa.select(UserGroup.group_id).where(UserGroup.user_id == user.id)))
    session.add_all(UserGroup(user_id=user.id, group_id=g) for g in wanted if g not in have)
    session.flush()
    return wanted


def deactivate(session: Session, user: User) -> None:
    """A deactivated user can no longer sign in, and none of their tokens works (kept for the audit log)."""
    user.active = False
    session.flush()


def by_email(session: Session, email: str) -> User | None:
    return session.scalar(sa.select(User).where(User.email == (email or "").strip().lower()))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(sa.select(User).order_by(User.id)))


def groups_of(session: Session, user_id: int) -> list[int]:
    """The groups a user is given (user_groups); an admin sees every group whatever this says."""
    return list(session.scalars(sa.select(UserGroup.group_id).where(UserGroup.user_id == user_id)
                                .order_by(UserGroup.group_id)))
