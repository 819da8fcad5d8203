"""The consent ledger: append an event, read a number's current consent.

Consent belongs to a phone number, not a member, and covers the whole of
telline: a STOP sent to one line stops every text from telline to that number
until it opts back in. The latest event decides; no events means "never asked".
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session

from telline import phone
from telline.models import Channel, ConsentAction, ConsentEvent, ConsentSource

log = logging.getLogger(__name__)
OPT_IN: Final[ConsentAction] = "opt_in"
OPT_OUT: Final[ConsentAction] = "opt_out"


def record(session: Session, number: str, action: ConsentAction, source: ConsentSource, *,
           group_id: int | None = None, detail: str = "", channel: Channel = "sms",
           given_on: dt.date | None = None) -> ConsentEvent:
    if action not in (OPT_IN, OPT_OUT):
        raise ValueError(f"unknown consent action {action!r}")
    event = ConsentEvent(phone=number, channel=channel, action=action, source=source,
                         group_id=group_id, detail=detail[:200], given_on=given_on)
    session.add(event)
    log.info("consent recorded", extra={"to": phone.mask(number), "action": action, "source": source})
    return event


def current(session: Session, number: str, channel: Channel = "sms") -> ConsentAction | None:
    return session.scalar(
        sa.select(ConsentEvent.action)
        .where(ConsentEvent.phone == number, ConsentEvent.channel == channel)
        .order_by(ConsentEvent.id.desc()).limit(1))


def is_opted_out(session: Session, number: str) -> bool:
    return current(session, number) == OPT_OUT


def not_opted_out(number_column: sa.ColumnElement[str | None] | InstrumentedAttribute[str | None],
                  channel: Channel = "sms") -> sa.ColumnElement[bool]:
    """A SQL condition: the number in `number_column` has not opted out (its latest event is
    not an opt-out). is_opted_out() in a WHERE clause, so a claim and the check are one statement."""
    return sa.func.coalesce(latest_action(number_column, channel), "") != OPT_OUT


def latest_action(number_column: sa.ColumnElement[str | None] | InstrumentedAttribute[str | None],
                  channel: Channel = "sms") -> sa.ScalarSelect[ConsentAction]:
    """current() as a correlated subquery: the latest action for the number in `number_column`
    (NULL: never asked). One index lookup a row (ix_consent_events_phone_channel_id), so a page of
    members or a broadcast's recipients cost what they hold, not what the ledger holds."""
    return (sa.select(ConsentEvent.action)
            .where(ConsentEvent.phone == number_column, ConsentEvent.channel == channel)
            .order_by(ConsentEvent.id.desc()).limit(1).scalar_subquery())


def opted_in(number_column: sa.ColumnElement[str | None] | InstrumentedAttribute[str | None],
             channel: Channel = "sms") -> sa.ColumnElement[bool]:
    """A SQL condition: the number's latest event is an opt-in (bulk selections: a broadcast's, a
    reminder's recipients)."""
    return latest_action(number_column, channel) == OPT_IN
