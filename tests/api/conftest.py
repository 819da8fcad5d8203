"""Two groups, an admin, a coordinator of each, their tokens; `api(token)` calls /api/v1 with one."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from telline import groups
from telline.accounts import tokens, users
from telline.models import Group, Line, User

PASSWORD = "correct horse 1"


@dataclasses.dataclass
class World:
    mine: Group
    theirs: Group
    line: Line
    their_line: Line
    admin: User
    ana: User  # coordinator of `mine`
    bob: User  # coordinator of `theirs`
    admin_token: str
    ana_token: str
    bob_token: str
    revoked_token: str  # ana's, revoked


class Api:
    def __init__(self, client: Any, token: str | None):
        self.client, self.token = client, token

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.client.open("/api/v1" + path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kw: Any) -> Any:
        return self("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self("DELETE", path, **kw)


def user(session, email, role, group_ids=()):
    return users.create_user(session, email=email, display_name=email.split("@")[0].title(), password=PASSWORD,
                             role=role, group_ids=group_ids)


@pytest.fixture
def world(session):
    mine = groups.create_group(session, name="Carers", timezone="Europe/London", region="GB")
    theirs = groups.create_group(session, name="Other", timezone="America/New_York", region="US")
    line = groups.add_line(session, mine.id, "+44 20 7946 0001")
    their_line = groups.add_line(session, theirs.id, "+1 212 555 0101")
    admin = user(session, "admin@example.org", "admin")
    ana = user(session, "ana@example.org", "coordinator", [mine.id])
    bob = user(session, "bob@example.org", "coordinator", [theirs.id])
    raw = {u.email: tokens.issue_token(session, u, "test")[1] for u in (admin, ana, bob)}
    revoked, revoked_raw = tokens.issue_token(session, ana, "old")
    tokens.revoke_token(session, revoked.id)
    session.commit()
    return World(mine, theirs, line, their_line, admin, ana, bob, raw[admin.email], raw[ana.email], raw[bob.email],
                 revoked_raw)


@pytest.fixture
def api(client):
    return lambda token=None: Api(client, token)


@dataclasses.dataclass
class Things:
    """One of each kind of object, all of `world.mine`, with a text whose body must not leak."""

    series_id: int
    occurrence_id: int
    inbox_item_id: int
    message_id: int
    feed_id: int
    member_id: int
    body: str = "I am not doing well tonight"


@pytest.fixture
def things(world, session):
    import datetime as dt

    from telline.models import InboxItem, Member, Membership, Message, utcnow
    from telline.scheduling import calendar_feeds
    from telline.scheduling.series import create_series
    from telline.voice.meetings import occurrence
    now = utcnow()
    first = (now - dt.timedelta(days=7)).astimezone(dt.UTC).replace(tzinfo=None, hour=19, minute=0, second=0,
                                                                     microsecond=0)
    series = create_series(session, group=world.mine, line=world.line, title="Tuesday", first_start_local=first,
                           rrule="FREQ=WEEKLY", timezone="UTC", now=now)
    session.flush()
    row = occurrence(session, series, series.first_start)
    member = Member(display_name="Sam", phone="+447700900123")
    session.add(member)
    session.flush()
    session.add(Membership(member_id=member.id, group_id=world.mine.id))
    message = Message(direction="inbound", line_id=world.line.id, member_id=member.id, from_number=member.phone,
                      to_number=world.line.phone_number, body=Things.body, status="received")
    session.add(message)
    session.flush()
    item = InboxItem(message_id=message.id, group_id=world.mine.id, member_id=member.id)
    session.add(item)
    feed, _token = calendar_feeds.create_feed(session, world.mine.id)
    session.commit()
    return Things(series.id, row.id, item.id, message.id, feed.id, member.id)
