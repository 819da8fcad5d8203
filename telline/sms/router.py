"""Who answers an incoming text: an ordered chain of handlers, the first to claim it wins.

Features plug in by adding a handler at app start-up (`router.add(order, name, fn)`);
nothing here changes. Built-ins (telline.sms.handlers) use these orders:
  10 opt-out · 20 opt-in · 30 help · 40 join · 50 next · 1000 coordinators' inbox
Opt-out always comes first (nothing may keep a STOP from the ledger) and the inbox last (it
takes whatever is left). Features take an order between 50 and 1000, leaving gaps:
  60 meeting controls (telline.voice.sms_controls) · 70 call me (telline.voice.call_me)
Both answer keywords of their own (one table, telline.sms.keywords: a text is one kind or none),
so they sit before anything that claims free text, such as check-in answers (100 and up): a
member's MUTE must never be taken as an answer.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable
from typing import Literal, cast

from flask import current_app
from sqlalchemy.orm import Session

from telline.models import Group, Line, Member, Message
from telline.sms.keywords import Keyword

EXTENSION = "telline.sms_router"
OptOutType = Literal["STOP", "START", "HELP"]  # what Twilio's Advanced Opt-Out already answered


@dataclasses.dataclass
class Inbound:
    """An incoming text as handlers see it (already stored)."""

    message: Message
    line: Line | None
    group: Group | None
    member: Member | None
    keyword: Keyword | None
    opt_out_type: OptOutType | None  # set when Twilio's Advanced Opt-Out handled (and answered) it

    @property
    def sender(self) -> str | None:
        return self.message.from_number

    @property
    def language(self) -> str:
        return ((self.member.language if self.member else None)
                or (self.keyword.language if self.keyword else None)
                or (self.group.language if self.group else None) or "en")


Handler = Callable[[Session, Inbound], bool]


class Router:
    def __init__(self) -> None:
        self._chain: list[tuple[int, str, Handler]] = []

    def add(self, order: int, name: str, handler: Handler) -> None:
        if any(n == name for _, n, _ in self._chain):
            raise ValueError(f"an SMS handler named {name!r} is already installed")
        bisect.insort(self._chain, (order, name, handler), key=lambda entry: entry[0])

    @property
    def names(self) -> list[str]:
        return [name for _, name, _ in self._chain]

    def route(self, session: Session, inbound: Inbound) -> str:
        for _, name, handler in self._chain:
            if handler(session, inbound):
                return name
        return "unclaimed"


def router() -> Router:
    return cast(Router, current_app.extensions[EXTENSION])  # put there by telline.sms.init_app
