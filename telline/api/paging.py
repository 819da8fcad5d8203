"""Keyset pagination: `?limit=50&after=<cursor>`; a page is {"items": [...], "next": cursor or null}.

A cursor is the id of the last item given (an id list, oldest first; the audit log, newest first),
so a page is one indexed range query however deep it is, and rows added meanwhile are not
skipped nor given twice. Pass `next` back as `after` for the following page.
"""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Range
from sqlalchemy.orm import InstrumentedAttribute, Session

from telline.api.blueprint import MAX_ID
from telline.api.schemas import Schema

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
T = TypeVar("T")


class PageQuery(Schema):
    limit = Integer(load_default=DEFAULT_LIMIT, validate=Range(1, MAX_LIMIT))
    after = Integer(load_default=None, validate=Range(0, MAX_ID), metadata={"description": "`next` of the page before"})


def page_schema(item: type[Schema], name: str) -> type[Schema]:
    """The page of `item`s, as a named schema in the OpenAPI document."""
    return type(name, (Schema,), {"items": List(Nested(item), required=True),
                                  "next": String(required=True, allow_none=True,
                                                 metadata={"description": "pass as `after`; null: the last page"})})


def by_id(session: Session, query: sa.Select[T], id_column: InstrumentedAttribute[int], limit: int,
          after: int | None, newest_first: bool = False) -> dict[str, Any]:
    if after is not None:
        query = query.where(id_column < after if newest_first else id_column > after)
    query = query.order_by(id_column.desc() if newest_first else id_column).limit(limit + 1)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next": str(getattr(rows[-1], id_column.key)) if more and rows else None}
