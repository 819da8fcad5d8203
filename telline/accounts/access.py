"""Who may see what: the one place for it. The API and the web console both ask here.

A coordinator sees the groups in user_groups; an admin sees every group. An object of a group the
user does not have is answered as if it did not exist (NotFound), so ids of other groups are not
even confirmed to exist. Being a series' host (meeting_series.host_user_id) gives no group.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session

from telline.models import Group, MeetingSeries, Membership, User, UserGroup


class NotFound(LookupError):
    """No such object, or one the user may not see: the same answer for both."""


class Forbidden(PermissionError):
    """The user's role may not do this (e.g. a coordinator managing users)."""


def is_admin(user: User) -> bool:
    return user.role == "admin" and user.active


def group_ids(session: Session, user: User) -> list[int]:
    if not user.active:
        return []
    if is_admin(user):
        return list(session.scalars(sa.select(Group.id).order_by(Group.id)))
    return list(session.scalars(sa.select(UserGroup.group_id).where(UserGroup.user_id == user.id)
                                .order_by(UserGroup.group_id)))


def group_filter(user: User) -> sa.Select[int]:
    """The ids of the user's groups as a subquery, for `.where(X.group_id.in_(group_filter(user)))`."""
    if is_admin(user):
        return sa.select(Group.id)
    if not user.active:
        return sa.select(Group.id).where(sa.false())
    return sa.select(UserGroup.group_id).where(UserGroup.user_id == user.id)


def can_see_group(session: Session, user: User, group_id: int | None) -> bool:
    if group_id is None or not user.active:
        return False
    if is_admin(user):
        return session.get(Group, group_id) is not None
    return session.scalar(sa.select(UserGroup.id).where(UserGroup.user_id == user.id,
                                                        UserGroup.group_id == group_id)) is not None


def require_group(session: Session, user: User, group_id: int | None) -> Group:
    """The group, if the user has it; NotFound otherwise (absent and forbidden look the same)."""
    if not can_see_group(session, user, group_id):
        raise NotFound(f"There is no group {group_id}.")
    return session.get_one(Group, group_id)


def require_admin(user: User) -> None:
    if not is_admin(user):
        raise Forbidden("Only an admin may do this.")


def hosted_series(session: Session, user: User) -> list[int]:
    """Series the user hosts (a coordinator may host series; hosting gives no other access)."""
    return list(session.scalars(sa.select(MeetingSeries.id).where(MeetingSeries.host_user_id == user.id)))


def body_visible(group_id: int, member_id: sa.ColumnElement[int | None] | InstrumentedAttribute[int | None],
                 ) -> sa.ColumnElement[bool]:
    """THE rule for a text's body, as a SQL condition: shown in a group (to whoever has the group)
    when its member belongs to that group (any membership status: their own words, in their own
    group), or when no member is known (a number that never joined, texting this group's line).
    A member of another group texting this line: the text is listed, its body is not."""
    return sa.or_(member_id.is_(None), sa.exists().where(Membership.member_id == member_id,
                                                         Membership.group_id == group_id))
